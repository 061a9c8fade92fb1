"""ClawFactory TUI: launch, contain, audit and stop a fleet of AI agents.

The package is split so that its faces stay thin: `cli` and `tui` call the
domain (`fleet`, `runtime`, `audit`, `snapshots`, `killswitch`), which knows
nothing of Textual.
"""

from cftui import lean_dataclasses

__version__ = "0.1.0"

lean_dataclasses.load()  # before any module of ours defines a dataclass
