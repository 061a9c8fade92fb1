"""The controller (`cftui serve`, CONTRACTS §11): the half of the operator's
authority that runs when nobody is at the terminal.

It has no rules of its own. Each module wires one outside trigger to the
domain function the CLI and the TUI already call:

- `lock`: one controller per fleet home, and how the TUI sees it runs;
- `secrets`: `secrets/controller.env` and the bots' webhook secrets;
- `settings`: the `[controller]` tables of `fleet.toml`;
- `schedule` and `retention`: scheduled snapshots (`cftui.snapshots`) and
  which of them to keep;
- `webhooks_in`: GitHub deliveries, verified, deduplicated, turned into
  `promote --from` (`cftui.proposals.rollout`);
- `remote_kill`: `POST /kill`, the one kill switch (`cftui.killswitch`);
- `notify`: lifecycle events out, read from `audit/events.jsonl`, signed;
- `watchdog`: a crashed gateway restarted through `cftui.lifecycle`;
- `budget`: the spend domain's budget check, called on a timer;
- `server` (the HTTP face) and `service` (the loop that runs them all);
- `unit`: the systemd user unit.

No Textual import anywhere here (`.importlinter` says so).
"""
