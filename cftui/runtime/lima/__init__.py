"""The Lima runtime: a bot's whole stack as systemd services in a Lima VM.

`runtime` is the Runtime itself; `ctl` drives `limactl`, `ssh` the one
connection per VM, `plan` computes what a bot looks like inside the VM,
`units` reads systemd's answers, `kill` the kill switch's in-VM steps,
`audit` brings the audit files back to the host, `assets` the VM's template
and wheels, `sync` moves `code/` and `state/`, `wiring` points OpenClaw at
the proxies in the VM. The VM side is `lima/` (template, scripts, units).
"""
