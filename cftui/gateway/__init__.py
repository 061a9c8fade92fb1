"""The gateway's side of a bot: its OpenClaw configuration (`config`), how it
is pointed at the bot's proxies (`wiring`), and what a start writes into its
`state/` for that (`state_wiring`), the same for every runtime."""
