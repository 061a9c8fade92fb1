"""A call's start line paired with its end line (see `cfproxies.record`):
which starts of a pass are still open (`Pairing`), whether a start's end
comes later in the file (`end_after`), and how an open start is shown
(`unfinished`). Old logs (no start lines) cost nothing here."""

from __future__ import annotations

import os
import re
from array import array
from typing import Any

from cfproxies.record import END_PREFIX, START, START_PREFIX, line_phase, token_count

from cftui.audit.traffic.fields import HALF_HEAD, field_of
from cftui.audit.traffic.lineio import newlines_in

# id -> (line number, tokens_est, file offset where the start line ends) of
# the start lines still waiting for their end
Pending = dict[bytes, tuple[int, int, int]]

# Start and end lines after a newline (a chunk's first line is checked on
# its own): each begins with a literal (re skips to it), and only the
# proxy's own line starts match (a body is never at the start of a line).
_HALF_IDS = re.compile(rb'\n\{"v":1,"phase":"(?:(s)tart|end)","id":"([0-9a-f]{32})"')
TARGETED_MAX = 8  # more starts open than this: one pass for all ends, not a search each


def halves(chunk: bytes) -> tuple[list[bytes], set[bytes]]:
    """The ids of a chunk's start lines (in order) and of its end lines, in
    one pass over the chunk."""
    found = _HALF_IDS.findall(chunk)
    starts = [ident for s, ident in found if s]
    ends = {ident for s, ident in found if not s}
    first = line_phase(chunk[:HALF_HEAD])
    if first is not None:
        if first[0] == START:
            starts.insert(0, first[1])
        else:
            ends.add(first[1])
    return starts, ends


class Pairing:
    """The start lines of one pass over consecutive chunks (a range, or the
    lines since the last count) that the filter matched and whose end has
    not been seen yet. Old logs (no start lines) cost nothing here. A start
    is closed by a search for its own end line from where it stands (it is
    usually a few lines on) or, when many are open, by one pass over the
    chunk for all its end lines. Only the starts left open are numbered
    and read (a few a chunk). A start still open at the end of the pass is
    looked for further on by the caller (`end_after`)."""

    def __init__(self) -> None:
        self.pending: Pending = {}

    def feed(
        self,
        chunk: bytes,
        first_line: int,
        offset: int,
        lines: int,
        starts: list[tuple[bytes, int]] | list[bytes],
        ends: set[bytes] | None = None,
    ) -> None:
        """Open `starts` (ids, with where their line starts in `chunk` when
        known), then close every open start whose end line is in the chunk
        (`ends`, when the caller has them). `first_line`: the number of the
        chunk's first line, `lines` how many it has; `offset`: where it
        begins in the file."""
        pending = self.pending
        if not starts and not pending:
            return
        targeted = ends is None and len(starts) + len(pending) <= TARGETED_MAX
        if ends is None and not targeted:
            ends = halves(chunk)[1]
        if targeted:
            for ident in list(pending):
                if (
                    chunk.startswith(END_PREFIX + ident)
                    or chunk.find(b"\n" + END_PREFIX + ident) >= 0
                ):
                    del pending[ident]
        else:
            assert ends is not None
            for ident in ends.intersection(pending):
                del pending[ident]
        left = []
        for item in starts:
            ident, at = item if isinstance(item, tuple) else (item, -1)
            if not targeted and ident in ends:  # type: ignore[operator]  # ends is None only when targeted
                continue  # (most: before any search for where it is)
            if at < 0:
                # From the end (0 if not after a newline: the first line):
                # a start left open is mostly one whose end is in the next chunk.
                at = 1 + chunk.rfind(b"\n" + START_PREFIX + ident)
            if targeted and chunk.find(b"\n" + END_PREFIX + ident, at) >= 0:
                continue
            left.append((at, ident))
        # Numbered from the chunk's end: the starts left open are mostly near it.
        number, counted = first_line + lines, len(chunk)
        for at, ident in sorted(left, reverse=True):
            number -= newlines_in(chunk, at, counted)
            counted = at
            line_end = chunk.find(b"\n", at)
            est = field_of(chunk[at:line_end], "tokens_est")
            pending[ident] = (number, token_count(est), offset + line_end)


def with_pending(found: array, pending: Pending) -> array:
    """The matching line numbers with the unfinished calls' start lines in place."""
    if not pending:
        return found
    return array("q", sorted([*found, *(number for number, _est, _end in pending.values())]))


UNFINISHED = "unfinished: no end record (the proxy stopped mid-call, or the call still runs)"
_FIRST_WINDOW = 8192  # an end usually follows its start within a few lines
_MAX_WINDOW = 4 << 20


def unfinished(record: dict[str, Any]) -> dict[str, Any]:
    """A start line shown as the call it began, which never finished."""
    return {**record, "unfinished": True, "error": record.get("error") or UNFINISHED}


def end_after(fd: int, ident: bytes, pos: int) -> tuple[bool, int]:
    """Whether the end line of call `ident` starts after offset `pos` (a
    newline, or before one); and the file size searched to. Windows grow
    from a few KB (the usual case: the end is near) to a few MB."""
    needle = b"\n" + END_PREFIX + ident
    size = os.fstat(fd).st_size
    window = _FIRST_WINDOW
    while pos < size:
        data = os.pread(fd, min(window, size - pos), pos)
        if needle in data:
            return True, size
        if len(data) <= len(needle):
            break
        pos += len(data) - len(needle)  # a needle across two windows is found in the next
        window = min(window * 4, _MAX_WINDOW)
    return False, max(pos, 0)
