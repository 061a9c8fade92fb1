"""The bot proposes, the operator promotes (CONTRACTS §9).

`code/` is the approved revision; the gateway writes what it wants changed
into its proposals tree (`bot_repos/<bot>/proposals/`), which is hostile
input. Each module here has one job:

- `approved`: the approved tree, read through the one host git;
- `hostile`: why an entry of the proposals tree cannot be promoted;
- `walk`: the proposals tree walked without following anything;
- `stat_cache`: cftui's own record of what each proposals file held;
- `scan`: what differs from the approved tree (`cftui proposals`);
- `diff`: the unified diff of one path or all (`cftui diff`);
- `agent_git`: the commits the agent made in the tree's own git, read in a
  bounded child process without running git;
- `seed`: the tree made, reset or refreshed from the approved tree (`reject`);
- `promote`: a proposal (or a reviewed branch) committed to the approved branch;
- `rollout`: promote, then rebuild or restart the running bot;
- `config_drift`: changes the gateway made to its own openclaw.json.

Nothing here imports Textual; the CLI (`cftui.cli.proposal_cmds`) and the
TUI are two faces on it.
"""
