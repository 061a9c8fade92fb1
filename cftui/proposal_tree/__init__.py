"""The approved tree read (without honouring its git config or hooks) and the
proposals tree seeded from it, with its stat cache: what a bot's start needs,
so it sits below the runtime, under the review and promotion of
`cftui.proposals`."""
