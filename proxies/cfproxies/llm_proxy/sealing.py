"""A record into its line of `traffic.jsonl`: scrubbed, then encoded."""

from __future__ import annotations

from typing import Any

from cfproxies.jsoncodec import dumps_line, orjson_line
from cfproxies.record import scrub_record
from cfproxies.scrub import RAW_CHECK_MAX, Scrubber

_MISSING = object()


def sealed_line(record: dict[str, Any], scrubber: Scrubber, raws: dict[str, bytes | None]) -> bytes:
    """The line a record is written as: `scrub_record`, then encoded. Most
    records hold nothing to scrub, and their line is then the record as it
    stands: so it is encoded first and checked whole, in one scan
    (`Scrubber.encoded_is_clean`), and scrubbed field by field only if that
    scan finds something. The line is the same either way; the one scan
    costs less than a check per field and a second encoding
    (bench/README.md, LLM proxy)."""
    request, response = raws.get("request"), raws.get("response")
    if len(request or b"") + len(response or b"") <= RAW_CHECK_MAX:
        prior = record.get("scrubbed", _MISSING)
        record["scrubbed"] = 0  # what scrub_record counts in a clean record
        line = orjson_line(record)
        if line is not None and scrubber.encoded_is_clean(line):
            return line
        if prior is _MISSING:  # as it was, for scrub_record to decide
            del record["scrubbed"]
        else:
            record["scrubbed"] = prior
    scrub_record(record, scrubber, raws)
    return dumps_line(record)
