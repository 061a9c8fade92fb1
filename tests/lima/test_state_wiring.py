"""The Lima runtime wires OpenClaw's state in the VM the Docker runtime's
way (one decision, cftui.gateway.state_wiring): JSON5 read as OpenClaw
reads it, the previous valid `openclaw.json` kept as known-good, the change
recorded as a `config` event on the host, and a models.json the agent
spoiled refused in one line before anything is written (it used to be
skipped in silence, or to crash the start)."""

from __future__ import annotations

import json
import shlex

import pytest
from cfproxies.envfile import read_env_file

from cftui.audit.events import read_events
from cftui.errors import CftuiError
from cftui.runtime.lima.plan import ports_for, unix_user

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BOT = "lbot"
STATE = f"/srv/clawfactory/bots/{BOT}/state"
CONFIG = f"{STATE}/openclaw.json"
KNOWN_GOOD = f"{CONFIG}.known-good"
MODELS = f"{STATE}/agents/main/agent/models.json"
# As an operator or OpenClaw itself writes them: comments, unquoted keys,
# trailing commas.
CONFIG_JSON5 = """{
  // the operator's choice of model
  agents: {defaults: {model: {primary: "anthropic/claude-sonnet-4"}}},
}
"""
MODELS_JSON5 = """{
  providers: {
    anthropic: {baseUrl: "https://api.anthropic.com", apiKey: "sk-ant-agent-own",},
  },
}
"""


def _write_as_gateway(lima_stack, path: str, text: str) -> None:
    user = unix_user("gateway", BOT)
    inner = f"mkdir -p $(dirname {path}) && printf %s {shlex.quote(text)} > {path}"
    lima_stack.vm_sh(f"runuser -u {user} -- sh -c {shlex.quote(inner)}")


def _read(lima_stack, path: str) -> str:
    return lima_stack.vm_sh(f"cat {path}").stdout


def _config_events(lima_stack) -> list[dict]:
    return [e for e in read_events(lima_stack.home, BOT) if e["action"] == "config"]


async def _wire(lima_stack) -> CftuiError | None:
    rt = lima_stack.runtime()
    try:
        shell = await rt._shell(lima_stack.vm)
        await rt._wire_openclaw(shell, lima_stack.bot, rt._plan(lima_stack.bot))
    except CftuiError as exc:
        return exc
    finally:
        await rt.aclose()
    return None


@pytest.fixture
def json5_state(lima_stack):
    """An OpenClaw state in the VM holding a JSON5 config and models.json."""
    lima_stack.vm_sh(f"rm -rf {STATE}/agents {CONFIG} {KNOWN_GOOD}")
    _write_as_gateway(lima_stack, CONFIG, CONFIG_JSON5)
    _write_as_gateway(lima_stack, MODELS, MODELS_JSON5)
    yield lima_stack
    lima_stack.vm_sh(f"rm -rf {STATE}/agents {CONFIG} {KNOWN_GOOD}", check=False)


async def test_wiring_keeps_the_known_good_config_and_records_the_change(json5_state):
    stack = json5_state
    token = read_env_file(stack.home.gateway_env(BOT))["CF_PROXY_TOKEN"]
    llm = f"http://127.0.0.1:{ports_for(stack.bot).llm}"
    before = len(_config_events(stack))

    assert await _wire(stack) is None

    assert _read(stack, KNOWN_GOOD) == CONFIG_JSON5  # the operator's file, byte for byte
    wired = json.loads(_read(stack, CONFIG))
    assert wired["agents"]["defaults"]["model"]["primary"] == "anthropic/claude-sonnet-4"
    assert wired["models"]["providers"]["anthropic"]["baseUrl"] == f"{llm}/anthropic"
    assert wired["gateway"]["bind"] == "loopback"
    models = json.loads(_read(stack, MODELS))  # JSON5 read and wired, not skipped
    assert models["providers"]["anthropic"] == {"baseUrl": f"{llm}/anthropic", "apiKey": token}
    user = unix_user("gateway", BOT)
    for path in (CONFIG, KNOWN_GOOD, MODELS):
        assert stack.vm_sh(f"stat -c '%U %a' {path}").stdout.split() == [user, "600"]

    events = _config_events(stack)
    assert len(events) == before + 1
    event = events[-1]
    assert (event["actor"], event["reason"]) == ("cftui", "runtime wiring")
    assert {"models", "proxy", "gateway"} <= set(event["changed"])
    assert token not in json.dumps(event)  # keys, never values

    # Wired already: the next start writes nothing and records nothing.
    assert await _wire(stack) is None
    assert len(_config_events(stack)) == before + 1
    assert _read(stack, KNOWN_GOOD) == CONFIG_JSON5


@pytest.mark.parametrize(
    ("models_text", "why"),
    [("{providers: {anthropic: ", "not valid JSON5"), ("[1, 2]", "JSON object at the top")],
    ids=["torn", "not-an-object"],
)
async def test_a_bad_models_json_is_refused_in_one_line_and_nothing_is_written(
    json5_state, models_text, why
):
    stack = json5_state
    _write_as_gateway(stack, MODELS, models_text)
    before = len(_config_events(stack))

    err = await _wire(stack)

    assert err is not None
    message = str(err)
    assert "\n" not in message and "Traceback" not in message
    assert MODELS in message and why in message and stack.vm in message
    # Refused before anything was written: the config, no known-good, no event.
    assert _read(stack, CONFIG) == CONFIG_JSON5
    assert stack.vm_sh(f"test -e {KNOWN_GOOD}", check=False).returncode != 0
    assert _read(stack, MODELS) == models_text
    assert len(_config_events(stack)) == before
