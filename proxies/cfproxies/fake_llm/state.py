"""What the fake remembers: the last requests it received (for tests and
`/_fake/requests`), and the default shape of its streams."""

from __future__ import annotations

from collections import deque
from typing import Any

from aiohttp import web

KEEP_REQUESTS = 200


class FakeState:
    """Per app: what arrived, and what a request that says nothing gets."""

    def __init__(self, chunks: int = 4, chunk_gap_ms: int = 0) -> None:
        self.requests: deque[dict[str, Any]] = deque(maxlen=KEEP_REQUESTS)
        self.chunks = chunks  # defaults for requests that carry no x-fake-* header
        self.chunk_gap_ms = chunk_gap_ms


STATE = web.AppKey("cf_fake_llm_state", FakeState)
