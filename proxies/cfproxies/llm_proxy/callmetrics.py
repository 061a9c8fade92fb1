"""The LLM proxy's `/metrics`: what each finished call adds (calls, tokens,
cost, errors, latencies), counted from its record the moment the record is
complete, and the families `/metrics` writes out (CONTRACTS part 2, §8).

A call's model is the agent's to name: it becomes a label only through
`model_label`, which scrubs it once per distinct name (a key pasted into
`model` never reaches a scraper) and lets at most `MAX_MODELS` names in;
the rest are counted as `_other`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from cfproxies.metrics import (
    OVERFLOW,
    Counter,
    Family,
    Gauge,
    Histogram,
    Labels,
    label_value,
    render,
)

MAX_MODELS = 64
MAX_SLOTS = 1024  # (provider, model, status) kept worked out; past that, worked out per call
UNKNOWN_PROVIDER = "_unknown"
# Seconds. A call's whole duration runs from milliseconds (a refusal) to the
# read timeout (300 s) of a thinking model's stream; its first byte, to tens
# of seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _Slot(NamedTuple):
    """The keys and rows one (provider, model, status) is counted in."""

    calls: Labels
    tokens_in: Labels
    tokens_out: Labels
    cost: Labels
    unpriced: Labels
    duration: list[float]
    ttfb: list[float]
    provider: str


class CallMetrics:
    """Every family of the LLM proxy's `/metrics`, and `observe(record)`."""

    def __init__(
        self,
        bot: str,
        providers: Iterable[str],
        scrub: Callable[[str], str],
        inflight: Callable[[], int],
    ) -> None:
        const = {"bot": bot}
        # The path names the provider: one the proxy does not know is the
        # agent's word, counted under one label.
        self._providers = frozenset(providers)
        self._scrub = scrub
        self._models: dict[str, str] = {}
        self._slots: dict[tuple[str, object, int], _Slot] = {}
        pm = ("provider", "model")
        self.calls = Counter(
            "cf_llm_calls_total",
            "Calls the LLM proxy finished, by provider, requested model and HTTP status.",
            (*pm, "status"),
            const,
        )
        self.errors = Counter(
            "cf_llm_errors_total",
            "Calls that failed (status 400 or more, or no answer), by status and kind.",
            ("provider", "status", "error_kind"),
            const,
        )
        self.tokens_in = Counter(
            "cf_llm_input_tokens_total",
            "Prompt tokens the providers reported (cached ones included).",
            pm,
            const,
        )
        self.tokens_out = Counter(
            "cf_llm_output_tokens_total",
            "Output tokens the providers reported (reasoning included).",
            pm,
            const,
        )
        self.cost = Counter(
            "cf_llm_cost_usd_total",
            "What the priced calls cost, in US dollars (cost_usd of traffic.jsonl).",
            pm,
            const,
        )
        self.unpriced = Counter(
            "cf_llm_unpriced_calls_total",
            "Calls with no price (an unknown model, no usage): not counted in the cost.",
            pm,
            const,
        )
        self.duration = Histogram(
            "cf_llm_call_duration_seconds",
            "Whole call, from the request to the end of the answer.",
            DURATION_BUCKETS,
            ("provider",),
            const,
        )
        self.ttfb = Histogram(
            "cf_llm_time_to_first_byte_seconds",
            "From the request to the upstream's first answer byte (calls that got one).",
            TTFB_BUCKETS,
            ("provider",),
            const,
        )
        self.inflight = Gauge(
            "cf_llm_inflight_calls",
            "Calls in progress.",
            lambda: [((), float(inflight()))],
            (),
            const,
        )

    def families(self) -> list[Family]:
        return [
            self.calls,
            self.errors,
            self.tokens_in,
            self.tokens_out,
            self.cost,
            self.unpriced,
            self.duration,
            self.ttfb,
            self.inflight,
        ]

    def model_label(self, model: object) -> str:
        """The label of a requested model: scrubbed and cut once per name."""
        key = model if isinstance(model, str) else ""
        label = self._models.get(key)
        if label is None:
            if len(self._models) >= MAX_MODELS:
                return OVERFLOW
            label = label_value(self._scrub(key)) if key else ""
            self._models[key] = label
        return label

    def _slot(self, provider: str, model: object, status: int) -> _Slot:
        """Where a call of this provider, model and status is counted: every
        label worked out once (scrubbed, bounded), the series made."""
        if provider not in self._providers:
            provider = UNKNOWN_PROVIDER
        pm = (provider, self.model_label(model))
        by_provider = (provider,)
        slot = _Slot(
            self.calls.key_for((*pm, str(status))),
            self.tokens_in.key_for(pm),
            self.tokens_out.key_for(pm),
            self.cost.key_for(pm),
            self.unpriced.key_for(pm),
            self.duration.row_for(by_provider),
            self.ttfb.row_for(by_provider),
            provider,
        )
        if len(self._slots) < MAX_SLOTS:
            self._slots[(provider, model, status)] = slot
        return slot

    def observe(self, rec: dict[str, Any]) -> None:
        """Count one finished call from its record (before it is sealed:
        only numbers and the scrubbed model label leave this record here).
        The hot path: one lookup of the call's slot, then plain additions."""
        status = rec["status"]
        model = rec["model"]
        slot = self._slots.get((rec["provider"], model, status))
        if slot is None:
            slot = self._slot(rec["provider"], model, status)
        self.calls.values[slot.calls] += 1
        if status >= 400 or status == 0 or rec["error"]:
            self.errors.inc((slot.provider, str(status), rec.get("error_kind") or ""))
        tokens = rec["tokens_in"]
        if tokens:
            self.tokens_in.values[slot.tokens_in] += tokens
        tokens = rec["tokens_out"]
        if tokens:
            self.tokens_out.values[slot.tokens_out] += tokens
        cost = rec.get("cost_usd")
        if cost is None:
            self.unpriced.values[slot.unpriced] += 1
        elif cost:
            self.cost.values[slot.cost] += cost
        self.duration.add(slot.duration, rec["duration_ms"] / 1000.0)
        ttfb = rec["ttfb_ms"]
        if ttfb:
            self.ttfb.add(slot.ttfb, ttfb / 1000.0)

    def exposition(self) -> bytes:
        return render(self.families())
