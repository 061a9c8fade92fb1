"""Spend: what a bot's LLM calls cost and its money budgets (issue 19).

The LLM proxy prices each call and enforces the budgets (it holds the
numbers); this package is the operator's side: the proxy's flags from
fleet.toml (`cftui.runtime.spend_flags`), and turning the proxy's spend state into events
and, with `on_exhausted = "stop"`, a stopped bot (`watch.check_budgets`)."""

from cftui.spend.watch import SpendNotice, check_budgets

__all__ = ["SpendNotice", "check_budgets"]
