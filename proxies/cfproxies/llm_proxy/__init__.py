"""`cf-llm-proxy`: forwards a bot's model calls to the providers, holds the
provider keys, enforces the operator's budget and writes `traffic.jsonl`."""

from cfproxies.llm_proxy.app import make_app
from cfproxies.llm_proxy.config import ConfigError, ProxyConfig, load_config

__all__ = ["ConfigError", "ProxyConfig", "load_config", "make_app"]
