"""What the kill switch says it did, per bot."""

from cftui.runtime.base import KillReport


def test_summary_of_a_bot_whose_gateway_was_already_gone_is_not_alarming() -> None:
    report = KillReport(
        "b1", already_gone=["gateway (not running)", "front"], stopped=["llm-proxy"]
    )
    text = report.summary()
    assert "gateway was not running" in text and "NOT" not in text


def test_summary_flags_a_gateway_that_was_not_killed() -> None:
    report = KillReport("b1", network_cut=True, errors=["engine timeout"])
    text = report.summary()
    assert "network cut" in text and "gateway NOT killed" in text and "engine timeout" in text
