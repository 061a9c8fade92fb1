"""`cf-egress`: the bot's only way out besides the LLM proxy.

A mitmproxy 11 DumpMaster with two addons, one per concern: `allowlist`
(refuses every host that is not listed, on every way in, and connects only
to addresses it checked, see `resolve`) and `capture` (records each flow as
one Fernet token a line when capture is on). Only the modules that name
mitmproxy import it, so `patterns`, `resolve` and `session` can be used (and
tested) from `cftui`'s environment too.
"""
