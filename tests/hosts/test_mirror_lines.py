"""The mirrors' line reader (`mirror.bounded_lines`): whole lines only, a
line over the bound never held whole, dropped or, for the host mirror's
protocol, refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cftui.audit.mirror import bounded_lines


class _Refused(Exception):
    pass


async def _collect(chunks: list[bytes], max_line: int, too_long: Any = None) -> list[bytes]:
    stream = asyncio.StreamReader()
    for chunk in chunks:
        stream.feed_data(chunk)
    stream.feed_eof()
    return [line async for line in bounded_lines(stream, max_line, too_long)]  # type: ignore[arg-type]


def test_lines_split_across_reads_come_whole_and_a_torn_tail_is_held_back() -> None:
    got = asyncio.run(_collect([b"ab", b"c\nde", b"f\ng\n", b"torn"], 16))
    assert got == [b"abc", b"def", b"g"]


def test_a_line_over_the_bound_is_dropped_whole_and_the_next_one_kept() -> None:
    long = b"x" * (200 << 10)  # several reads' worth
    got = asyncio.run(_collect([b"short\n", long, b"\nafter\n"], 1 << 10))
    assert got == [b"short", b"after"]


@pytest.mark.parametrize(
    "chunks",
    [
        [b"y" * 40],  # still growing past the bound
        [b"y" * 30, b"y" * 5 + b"\n"],  # ends just past it
    ],
)
def test_a_line_over_the_bound_is_refused_when_the_reader_says_so(chunks: list[bytes]) -> None:
    with pytest.raises(_Refused, match="over 32 bytes"):
        asyncio.run(_collect([b"ok\n", *chunks], 32, _Refused))
