"""What the agent names in a call (its model) reaches the record, the
metrics and the spans bounded: a model name of megabytes made the call's
record one line longer than the audit mirrors carry (they drop a line
over `cftui.audit.mirror.MAX_LINE`, so the call vanished from the
operator's copy of a remote or Lima bot's traffic) and a span of the same
size for every call."""

from __future__ import annotations

import asyncio

from cfproxies.llm_proxy.handler import MAX_MODEL_CHARS

from cftui.audit import mirror
from tests.proxies.otlp_receiver import otlp_receiver
from tests.proxies.proxyhelpers import AUTH, anthropic_body


async def test_a_model_name_of_megabytes_is_cut_in_the_record_and_the_span(start_proxy, client):
    with otlp_receiver() as rx:
        proxy = await start_proxy("--otlp-endpoint", rx.url)
        huge = "claude-" + "\x01" * (3 << 20)  # six bytes a character once escaped in JSON
        body = {**anthropic_body(), "model": huge}
        async with client.post(f"{proxy.url}/anthropic/v1/messages", json=body, headers=AUTH) as r:
            await r.read()
        (rec,) = await proxy.wait_records(1)
        (span,) = await asyncio.to_thread(rx.wait_spans, 1)
    line = max(proxy.log_path.read_bytes().splitlines(), key=len)
    assert len(line) < 2 << 20 < mirror.MAX_LINE, len(line)
    assert rec["model"].startswith("claude-") and len(rec["model"]) <= MAX_MODEL_CHARS
    assert rec.get("model_truncated") is True
    assert span.attributes["gen_ai.request.model"] == rec["model"]
    assert len(span.name) < MAX_MODEL_CHARS + 40
    assert sum(len(b) for b in rx.bodies) < 64 << 10


async def test_a_model_name_of_ordinary_length_is_kept_whole(start_proxy, client):
    proxy = await start_proxy()
    name = "anthropic/claude-sonnet-4-5:beta-" + "x" * 200
    body = {**anthropic_body(), "model": name}
    async with client.post(f"{proxy.url}/anthropic/v1/messages", json=body, headers=AUTH) as r:
        await r.read()
    (rec,) = await proxy.wait_records(1)
    assert rec["model"] == name and "model_truncated" not in rec


def test_help_and_label_values_parse_back_as_written():
    """The exposition format escapes a HELP text's backslash and newline
    only (a quote is itself there), a label value's quote too: each parses
    back to what was meant, whatever the agent put in a value."""
    from cfproxies.metrics import Counter, label_value, render
    from prometheus_client.parser import text_string_to_metric_families

    help_text = 'calls "quoted", a \\ backslash and a\nnewline'
    values = ['a"b', "back\\slash", 'x"} 1\nfake_total{bot="y"} 9', '",le="+Inf', "\x1b[2J\u202e"]
    c = Counter("t_total", help_text, ("model",), {"bot": 'b"1'})
    for v in values:
        c.inc((label_value(v),))
    (family,) = text_string_to_metric_families(render([c]).decode())
    assert family.documentation == help_text
    assert {s.labels["model"] for s in family.samples} == {label_value(v) for v in values}
    assert {s.labels["bot"] for s in family.samples} == {'b"1'}
    assert [s.name for s in family.samples] == ["t_total"] * len(values)
