"""The proxies' `/metrics`: counters, gauges and histograms kept as plain
numbers in dicts, and written out in the Prometheus text format (0.0.4)
when a scraper asks.

Why not prometheus_client: its `inc()` takes a lock and its `labels()` a
lookup under another, on every call of the LLM proxy's hot path (benchmarked
in instructions per call, bench/llm_proxy_instructions.py), and the egress
proxy lives in an environment of its own (mitmproxy's pins) where one more
dependency would buy only the few lines of formatting below. Both proxies
update their numbers from one thread (the event loop), so a dict increment
is all a call costs. The tests parse every exposition with
prometheus_client's own parser.

Label values often come from the agent (a model name, a host it tried), so
each family keeps at most `max_series` label sets; past that, new ones are
counted under `OVERFLOW` in every label, and a value is cut and stripped of
control characters before it is written.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence

OVERFLOW = "_other"
MAX_SERIES = 200
MAX_LABEL_CHARS = 120
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[str, ...]


def label_value(text: object) -> str:
    """A label value safe to write: a string, printable, at most
    MAX_LABEL_CHARS characters (the exposition escapes the rest)."""
    value = text if isinstance(text, str) else "" if text is None else str(text)
    if len(value) > MAX_LABEL_CHARS:
        value = value[:MAX_LABEL_CHARS]
    if not value.isprintable():
        value = "".join(c if c.isprintable() else "?" for c in value)
    # A lone surrogate (JSON can spell one) cannot be written as UTF-8.
    return value.encode("utf-8", "replace").decode("utf-8")


def _escape_help(text: str) -> str:
    """A HELP text as the format escapes it: backslash and newline only."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape(value: str) -> str:
    """A label value as the format escapes it: backslash, newline and the quote."""
    return _escape_help(value).replace('"', '\\"')


def _number(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Family:
    """One metric: its name, help, type and label names; `const` labels
    (the bot) are written on every sample."""

    kind = "untyped"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        const: dict[str, str] | None = None,
        max_series: int = MAX_SERIES,
    ) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)
        self.max_series = max_series
        self._overflow: Labels = (OVERFLOW,) * len(self.label_names)
        self._const = ",".join(f'{k}="{_escape(label_value(v))}"' for k, v in (const or {}).items())
        self._start()

    def _start(self) -> None:
        """Make the kind's own store of samples (none for a read-on-scrape family)."""

    def _labels(self, values: Labels, extra: str = "") -> str:
        parts = [self._const] if self._const else []
        parts += [f'{n}="{_escape(v)}"' for n, v in zip(self.label_names, values, strict=True)]
        if extra:
            parts.append(extra)
        return "{" + ",".join(parts) + "}" if parts else ""

    def _head(self) -> list[str]:
        return [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]

    def lines(self) -> list[str]:
        raise NotImplementedError


class Counter(Family):
    """A monotonic sum per label set."""

    kind = "counter"
    values: dict[Labels, float]

    def _start(self) -> None:
        self.values = {}

    def key_for(self, labels: Labels) -> Labels:
        """The key these labels are counted under (themselves, or the
        overflow once the family is full), its series made if new: a caller
        that keeps it adds to `values[key]` with no check (the hot path)."""
        values = self.values
        if labels not in values:
            if len(values) >= self.max_series:
                labels = self._overflow
            values.setdefault(labels, 0.0)
        return labels

    def inc(self, labels: Labels = (), amount: float = 1.0) -> None:
        values = self.values
        if labels in values:
            values[labels] += amount
        elif len(values) < self.max_series:
            values[labels] = amount
        else:
            values[self._overflow] = values.get(self._overflow, 0.0) + amount

    def lines(self) -> list[str]:
        out = self._head()
        # The text format names a counter's sample NAME_total when the family
        # is NAME_total; prometheus_client's parser reads either.
        for labels, value in sorted(self.values.items()):
            out.append(f"{self.name}{self._labels(labels)} {_number(value)}")
        return out


class Gauge(Family):
    """A value read when scraped, from a callback (in-flight calls, capture on)."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help_text: str,
        read: Callable[[], Iterable[tuple[Labels, float]]],
        labels: Sequence[str] = (),
        const: dict[str, str] | None = None,
    ) -> None:
        super().__init__(name, help_text, labels, const)
        self.read = read

    def lines(self) -> list[str]:
        out = self._head()
        for labels, value in self.read():
            out.append(f"{self.name}{self._labels(labels)} {_number(value)}")
        return out


class Histogram(Family):
    """Counts per bucket (upper bounds, seconds), a sum and a count per label set."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        bounds: Sequence[float],
        labels: Sequence[str] = (),
        const: dict[str, str] | None = None,
        max_series: int = MAX_SERIES,
    ) -> None:
        super().__init__(name, help_text, labels, const, max_series)
        self.bounds = tuple(sorted(bounds))
        # Per label set: a count per bucket (the last one +Inf), then the sum.
        self.series: dict[Labels, list[float]] = {}

    def row_for(self, labels: Labels) -> list[float]:
        """The counts of a label set (made if new; the overflow's once the
        family is full), for `add` on the hot path."""
        row = self.series.get(labels)
        if row is None:
            if len(self.series) >= self.max_series:
                labels = self._overflow
                row = self.series.get(labels)
            if row is None:
                row = self.series[labels] = [0.0] * (len(self.bounds) + 2)
        return row

    def add(self, row: list[float], value: float) -> None:
        """Count one value in a row that `row_for` gave."""
        row[bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def observe(self, labels: Labels, value: float) -> None:
        self.add(self.row_for(labels), value)

    def lines(self) -> list[str]:
        out = self._head()
        for labels, row in sorted(self.series.items()):
            running = 0.0
            for bound, count in zip((*self.bounds, float("inf")), row, strict=False):
                running += count
                # As the client libraries write it ("1.0"), so that a series
                # reads the same whoever wrote its buckets.
                le = 'le="+Inf"' if bound == float("inf") else f'le="{float(bound)!r}"'
                out.append(f"{self.name}_bucket{self._labels(labels, le)} {_number(running)}")
            out.append(f"{self.name}_sum{self._labels(labels)} {_number(row[-1])}")
            out.append(f"{self.name}_count{self._labels(labels)} {_number(running)}")
        return out


def render(families: Iterable[Family]) -> bytes:
    """The exposition of these families, one text document."""
    lines: list[str] = []
    for family in families:
        lines.extend(family.lines())
    return ("\n".join(lines) + "\n").encode("utf-8")
