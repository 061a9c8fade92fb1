"""THE reader of `traffic.jsonl` (CONTRACTS §3), for the TUI, `cftui traffic`
and `cftui --run`.

Toolong's way, improved: the file is never loaded whole. A line-offset index
(`array('q')`, 8 bytes a line) is built from the END of the file with
`pread` blocks (no mmap, so resident memory stays flat), so the
newest calls are known first; a line is read with `os.pread` only when it is
shown; raw lines and parsed records sit in small LRU caches. A follower polls
the open file for appends and notices truncation and rotation (inode change),
which Toolong does not. Filters and totals scan the file in chunks with
one C-level search each and touch only the lines that can match; a big file
is cut into byte ranges scanned by worker processes, and this process only
merges their results (a 1 GB log: ~0.03 s of its CPU; `TrafficLog.filter`).

A call may take two lines (see `cfproxies.record`): a start line written
before the request went upstream and the end line (the whole record), with
the same `id`. Every view and total pairs them: a call counts once, as its
end line; a start line whose end is in the file is hidden (`record` is None
for it, `is_hidden` says so, and it is not malformed); a start line with no
end is a call that never finished (its proxy died, or it is still running),
shown once as a record marked `"unfinished": true` and counted in the
totals as a call, a failure, and its `tokens_est`. Pairing costs two
literal-prefixed regex passes over a chunk that holds start lines (none over
an older log) and a few set operations; only the starts a chunk leaves open
are looked at one by one. Following (`poll`, `matches_line`, `add_line`)
skips start lines: a live call shows when it ends.

The modules, each importing only those above it:
- `lineio`: whole lines read with `pread`, newlines counted and found;
- `fields`: a record's top-level scalars read without parsing its bodies;
- `filter`: the filter language (`TrafficFilter`) and its byte needles;
- `pairing`: start lines matched with their ends (`Pairing`, `end_after`);
- `totals`: calls, tokens and cost (`Totals`), added up a chunk at a time;
- `scan`: a filter's pass over byte ranges, here or in worker processes;
- `log`: `TrafficLog`, the index, line access, follower and whole-file passes;
- `daily`: `DailyCounter`, today's (this month's) calls, tokens and cost
  for the fleet view;
- `spend`: totals grouped by model, provider, day or hour since a date;
- `display`: one call as the CLI and `--run` print it.

Import each name from the module that owns it: this package re-exports
nothing (importing one module does not pay for the others). No Textual
here: the TUI drives these blocking calls from thread workers.
"""
