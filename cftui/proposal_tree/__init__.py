"""The approved tree read (without honouring its git config or hooks) and the
proposals tree seeded from it, with its stat cache: what a bot's start needs,
so it sits below the runtime, under the review and promotion of
`cftui.proposals`."""

# Over this a proposed file is refused unread (OpenClaw's skills and notes
# are text; anything bigger belongs in the approved tree by another route),
# and a runtime that copies the tree (Lima) does not carry it.
MAX_FILE_BYTES = 16 << 20
