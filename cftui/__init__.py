"""ClawFactory TUI: launch, contain, audit and stop a fleet of AI agents.

The package is split so that its faces stay thin: `cli` and `tui` call the
domain (`fleet`, `runtime`, `audit`, `snapshots`, `killswitch`), which knows
nothing of Textual.
"""

__version__ = "0.1.0"
