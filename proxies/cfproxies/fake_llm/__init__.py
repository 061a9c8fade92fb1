"""`cf-fake-llm`: the providers' wire formats served locally, for tests and the demo."""

from cfproxies.fake_llm.app import make_app

__all__ = ["make_app"]
