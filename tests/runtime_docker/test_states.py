"""Docker's container states and events, read as the runtime's."""

from __future__ import annotations

from cftui.runtime.docker.states import event_change, parse_docker_time, service_status
from cftui.runtime.status import KILLED, MISSING, RESTARTING, RUNNING, STARTING, STOPPED

LABELS = {"io.clawfactory.bot": "b", "io.clawfactory.service": "gateway"}


def _event(action: str, **attrs: str) -> dict:
    return {
        "Type": "container",
        "Action": action,
        "Actor": {"Attributes": {**LABELS, **attrs}},
        "timeNano": 1_700_000_000_123_456_789,
    }


def test_events_map_to_state_changes() -> None:
    assert event_change(_event("start")).state == RUNNING
    die = event_change(_event("die", exitCode="137"))
    assert (die.state, die.detail) == (KILLED, "exit 137")
    assert event_change(_event("die", exitCode="0")).state == STOPPED
    assert event_change(_event("destroy")).state == MISSING
    assert event_change(_event("health_status: healthy")).state == RUNNING
    assert event_change(_event("kill")) is None
    assert event_change(_event("exec_start: sh")) is None
    change = event_change(_event("start"))
    assert (change.bot, change.service) == ("b", "gateway")
    assert change.ts.microsecond == 123456


def test_events_without_our_labels_are_ignored() -> None:
    event = _event("start")
    event["Actor"]["Attributes"] = {"name": "x"}
    assert event_change(event) is None


def _attrs(status: str, **state: object) -> dict:
    return {
        "State": {"Status": status, "StartedAt": "2026-01-02T03:04:05.123456789Z", **state},
        "RestartCount": state.pop("restarts", 0) if "restarts" in state else 0,
        "Config": {"Image": "img"},
    }


def test_inspect_maps_to_service_status() -> None:
    running = service_status("gateway", _attrs("running", Health={"Status": "healthy"}))
    assert running.state == RUNNING and running.started_at.year == 2026
    assert service_status("gateway", _attrs("running", Health={"Status": "starting"})).state == (
        STARTING
    )
    assert service_status("gateway", _attrs("exited", ExitCode=137)).state == KILLED
    oom = service_status("gateway", _attrs("exited", ExitCode=137, OOMKilled=True))
    assert oom.state == STOPPED and "out of memory" in oom.detail
    assert service_status("gateway", _attrs("restarting", ExitCode=3)).state == RESTARTING
    assert service_status("gateway", None).state == MISSING


def test_docker_times_parse_and_zero_time_is_none() -> None:
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    assert parse_docker_time("2026-11-24T06:48:41.018645123Z").microsecond == 18645
    assert parse_docker_time("garbage") is None
