"""The tabs of a bot's screen, in order: the one list the bot screen, the
command palette and the CLI's `--open BOT:TAB` read (no Textual import, so
the CLI can check a tab name without loading the app)."""

TABS = ("overview", "logs", "traffic", "capture", "snapshots", "config", "proposals")
