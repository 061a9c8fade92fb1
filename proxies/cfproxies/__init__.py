"""ClawFactory's per-bot services and the pieces they share with `cftui`.

Only the shared pieces (`jsonl`, `record`, `scrub`) live at the top; each
service (`llm_proxy`, `egress`, `fake_llm`) is a subpackage that imports its
own dependencies, so an image installs just what its service needs.
"""

__version__ = "0.1.0"
