"""What a call cost, in US dollars: the operator's price for its model
(fleet.toml's `[prices."MODEL"]`, given as `--prices`) or else genai-prices'
(pydantic's maintained database, used from the data bundled with the
package: nothing here fetches prices at run time, `UpdatePrices` is never
started).

genai-prices takes ~100 µs to find a model and price a usage, most of a
call's CPU budget. So each (provider, model) is looked up once and its rates
kept as floats per token (`Rates`); a call is then priced with a few
multiplications. When a model's rates are kept, they are checked against
genai-prices' own answer for two sample usages (one past the long-context
tier); a model whose prices this shortcut does not reproduce (per-request
fees, other units) is priced by genai-prices on every call instead.

Usage follows CONTRACTS §3, which is also genai-prices' rule: `tokens_in`
counts every prompt token, cache reads and writes included; cached tokens are
priced at their cache rate and not again at the input rate.

What a record says (`cost_status`; `cost_usd` is a number for the first
four, null for the others):
- `priced`: from genai-prices;  `override`: from the operator's price;
- `not_sent`: the proxy answered the call itself (refused it): 0;
- `upstream_error`: the provider answered an error with no usage: 0;
- `unknown_model`: no price for the model (or no model named);
- `no_usage`: the call went upstream but no usage came back (a stream cut
  off, an OpenAI stream without `include_usage`): the budget charges it its
  reservation (`cost_est_usd`), so that hiding usage does not make calls free.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

PRICED, OVERRIDE, NOT_SENT, UPSTREAM_ERROR = "priced", "override", "not_sent", "upstream_error"
UNKNOWN_MODEL, NO_USAGE = "unknown_model", "no_usage"
# The proxy's provider names where genai-prices calls them otherwise; any
# other name is left to genai-prices to guess from the model.
GENAI_PROVIDER = {"anthropic": "anthropic", "openai": "openai", "gemini": "google"}
GENAI_PROVIDER["openrouter"] = "openrouter"
MAX_CACHED = 4096  # models kept: the agent names models, so bounded
MAX_MODEL_CHARS = 256  # a longer name is no model's: not looked up (the agent writes it)
_PER_MTOK = 1e-6
_FOREVER = math.inf


class Usage(NamedTuple):
    tokens_in: int  # every prompt token, cached ones included
    tokens_out: int
    cache_read: int
    cache_write: int


# A rate: (base, ((threshold, rate), ...)) in USD per token: past a threshold
# of input tokens, the whole call pays that tier's rate (genai-prices' rule).
Rate = tuple[float, tuple[tuple[int, float], ...]]


class Rates:
    """One model's prices, per token; a cache rate of None: those tokens are
    priced as plain input. Built once per model, so that pricing a call is
    a handful of multiplications: the four rates of each stretch of prompt
    sizes between the tiers' thresholds are worked out here."""

    __slots__ = ("base", "source", "tiers")

    def __init__(
        self,
        input: Rate,
        output: Rate,
        cache_read: Rate | None,
        cache_write: Rate | None,
        source: str,  # PRICED or OVERRIDE
    ) -> None:
        self.source = source
        rates = (input, output, cache_read or input, cache_write or input)
        thresholds = sorted({t for rate in rates for t, _ in rate[1]})
        self.base = tuple(_at(rate, 0) for rate in rates)
        # (threshold, rates past it), ascending: past the last one passed.
        self.tiers = tuple((t, tuple(_at(rate, t + 1) for rate in rates)) for t in thresholds)

    def cost(self, tokens_in: int, tokens_out: int, cache_read: int, cache_write: int) -> float:
        """USD of a usage (CONTRACTS §3: `tokens_in` includes the cached parts)."""
        i, o, r, w = self.base
        for threshold, rates in self.tiers:
            if tokens_in > threshold:
                i, o, r, w = rates
        plain = tokens_in - cache_read - cache_write
        return (plain if plain > 0 else 0) * i + cache_read * r + cache_write * w + tokens_out * o


def _at(rate: Rate, total_in: int) -> float:
    base, tiers = rate
    for threshold, price in reversed(tiers):
        if total_in > threshold:
            return price
    return base


def _flat(usd_per_mtok: float) -> Rate:
    return (usd_per_mtok * _PER_MTOK, ())


def override_rates(table: Mapping[str, float]) -> Rates:
    """The operator's `[prices."MODEL"]` (validated by the config) as Rates."""
    read = table.get("cache_read_per_mtok")
    write = table.get("cache_write_per_mtok")
    return Rates(
        _flat(table["input_per_mtok"]),
        _flat(table["output_per_mtok"]),
        None if read is None else _flat(read),
        None if write is None else _flat(write),
        OVERRIDE,
    )


def _genai_rate(value: Any) -> Rate | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return (float(value) * _PER_MTOK, ())
    tiers = tuple((int(t.start), float(t.price) * _PER_MTOK) for t in value.tiers)
    return (float(value.base) * _PER_MTOK, tiers)


_PROBES = (Usage(1000, 500, 300, 200), Usage(300_000, 2000, 0, 0), Usage(1000, 10, 0, 0))


class _Slow(NamedTuple):
    """A model priced by genai-prices on every call (see the module's doc)."""

    model: Any
    provider: Any


class Pricer:
    """Prices calls; one per proxy. `clock` gives epoch seconds (tests)."""

    def __init__(
        self,
        overrides: Mapping[str, Mapping[str, float]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.overrides = {m: override_rates(t) for m, t in overrides.items()}
        self.clock = clock
        self._cache: dict[tuple[str, str], tuple[Rates | _Slow | None, float]] = {}
        self.lookups = 0  # database lookups done (the cache's misses)
        import genai_prices  # ~0.15 s: at start, not under the first call
        from genai_prices import data_snapshot

        self._genai = genai_prices
        self._snapshot = data_snapshot.get_snapshot()
        assert not self._snapshot.from_auto_update  # bundled data, never fetched

    def rates(self, provider: str, model: str | None) -> Rates | _Slow | None:
        """The prices of `model` as `provider` serves it; None if unknown."""
        if model is None or len(model) > MAX_MODEL_CHARS:
            return None
        found = self.overrides.get(model)
        if found is not None:
            return found
        key = (provider, model)
        hit = self._cache.get(key)
        if hit is not None and (hit[1] == _FOREVER or self.clock() < hit[1]):
            return hit[0]
        now = self.clock()
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        rates, until = self._look_up(provider, model, now)
        self._cache[key] = (rates, until)
        return rates

    def _look_up(self, provider: str, model: str, now: float) -> tuple[Rates | _Slow | None, float]:
        self.lookups += 1
        when = datetime.fromtimestamp(now, UTC)
        try:
            prov, info = self._snapshot.find_provider_model(
                model, None, GENAI_PROVIDER.get(provider), None
            )
            price = info.get_prices(when)
        except (LookupError, ValueError):
            return None, _FOREVER
        # A model whose price changes with the date or the time of day is
        # looked up again each minute; any other keeps its rates.
        until = (now // 60 + 1) * 60 if isinstance(info.prices, list) else _FOREVER
        try:
            rates = Rates(
                _genai_rate(getattr(price, "input_mtok", None)) or (0.0, ()),
                _genai_rate(getattr(price, "output_mtok", None)) or (0.0, ()),
                _genai_rate(getattr(price, "cache_read_mtok", None)),
                _genai_rate(getattr(price, "cache_write_mtok", None)),
                PRICED,
            )
            for probe in _PROBES:
                want = float(
                    info.calc_price(
                        _genai_usage(probe), prov, genai_request_timestamp=when
                    ).total_price
                )
                if not math.isclose(rates.cost(*probe), want, rel_tol=1e-9, abs_tol=1e-15):
                    return _Slow(info, prov), until
        except (AttributeError, TypeError, ValueError, ArithmeticError):
            return _Slow(info, prov), until
        return rates, until

    def cost(self, provider: str, model: str | None, usage: Usage) -> tuple[float | None, str]:
        """(cost_usd, cost_status) of a finished call's usage."""
        rates = self.rates(provider, model)
        if rates is None:
            return None, UNKNOWN_MODEL
        if isinstance(rates, Rates):
            return rates.cost(*usage), rates.source
        try:
            when = datetime.fromtimestamp(self.clock(), UTC)
            calc = rates.model.calc_price(
                _genai_usage(usage), rates.provider, genai_request_timestamp=when
            )
        except (LookupError, ValueError, TypeError, ArithmeticError):
            return None, UNKNOWN_MODEL
        return float(calc.total_price), PRICED


def _genai_usage(u: Usage) -> Any:
    from genai_prices import Usage as GenaiUsage

    return GenaiUsage(
        input_tokens=u.tokens_in,
        output_tokens=u.tokens_out,
        cache_read_tokens=u.cache_read,
        cache_write_tokens=u.cache_write,
    )
