"""The Lima runtime: a bot's whole stack as systemd services in a Lima VM.

`runtime` is the Runtime itself. `vms` creates, boots, connects to and sets
up the VMs; `ctl` drives `limactl`, `ssh` the one connection per VM, `sync`
moves `code/` and `state/`, `assets` the VM's template and wheels. `plan`
computes what a bot looks like inside the VM, `wiring` points its OpenClaw
at the proxies there, `status` and `units` read systemd's answers,
`kill_batch` and `kill` are the kill switch's in-VM steps, and `audit`
brings the audit files back to the host. The VM side is `lima/` (template,
provisioning scripts, units).
"""
