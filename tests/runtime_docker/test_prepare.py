"""What the Docker runtime does on the host before a gateway starts: the
OpenClaw wiring written into its state, and the files handed to its user."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cftui.botinit import init_bot
from cftui.errors import CftuiError, FleetError
from cftui.fleet import FleetHome
from cftui.gateway import config as gateway_config
from cftui.runtime.docker.runtime import DockerRuntime
from cftui.runtime.gateway_uid import gateway_user


@pytest.fixture
def fleet(tmp_path: Path) -> FleetHome:
    return FleetHome(tmp_path / "home")


def test_openclaw_state_is_wired_before_start(fleet: FleetHome) -> None:
    bot = init_bot(fleet, "oc").bot
    assert bot.gateway == "openclaw"
    agent = fleet.state_dir("oc") / "agents" / "main" / "agent"
    agent.mkdir(parents=True)
    (agent / "models.json").write_text(
        json.dumps({"providers": {"anthropic": {"baseUrl": "https://api.anthropic.com"}}})
    )
    env = DockerRuntime(fleet)._prepare_host(bot)

    config = gateway_config.read_config(fleet, "oc")
    token = env["CF_PROXY_TOKEN"]
    assert config["models"]["providers"]["anthropic"]["baseUrl"] == (
        "http://llm-proxy:9090/anthropic"
    )
    assert config["models"]["providers"]["anthropic"]["apiKey"] == token
    assert config["proxy"]["proxyUrl"] == "http://egress:8888"
    assert config["gateway"]["auth"]["token"] == env["OPENCLAW_GATEWAY_TOKEN"]
    models = json.loads((agent / "models.json").read_text())
    assert models["providers"]["anthropic"]["baseUrl"] == "http://llm-proxy:9090/anthropic"
    control = json.loads((fleet.audit_dir("oc") / "egress.control.json").read_text())
    assert control["capture"] is False
    config_file = gateway_config.config_path(fleet, "oc")
    assert config_file.stat().st_mode & 0o777 == 0o600
    uid, gid = gateway_user()
    for path in (config_file, agent / "models.json", fleet.state_dir("oc")):
        assert (path.stat().st_uid, path.stat().st_gid) == (uid, gid)
    if os.geteuid() == 0:
        code = fleet.code_dir("oc")
        assert code.stat().st_uid == 0  # git run by root keeps working in code/
        assert (code / ".git").stat().st_uid == 0
        assert (code / "workspace" / "memory").stat().st_uid == uid


def test_a_start_hands_over_only_the_writable_paths(fleet: FleetHome) -> None:
    """Only `state/` and the writable paths change owner: the rest of the
    approved tree (read-only to the gateway) is not walked, so a big `code/`
    costs a start nothing, and not one of its inodes is touched."""
    if os.geteuid() != 0:
        pytest.skip("ownership is handed over only when cftui runs as root")
    bot = init_bot(fleet, "oc").bot
    code = fleet.code_dir("oc")
    memory = code / "workspace" / "memory"
    memory.mkdir(parents=True, exist_ok=True)
    (memory / "old-note.md").write_text("kept\n")
    skills = code / "workspace" / "skills" / "big"
    skills.mkdir(parents=True)
    for i in range(50):
        (skills / f"f{i}.md").write_text("x\n")
    untouched = [skills / f"f{i}.md" for i in range(50)] + [skills, code / "Dockerfile"]
    before = {p: os.lstat(p) for p in untouched}
    DockerRuntime(fleet)._prepare_host(bot)
    uid, gid = gateway_user()
    for p, st in before.items():
        now = os.lstat(p)
        assert (now.st_uid, now.st_gid, now.st_ctime_ns) == (
            st.st_uid,
            st.st_gid,
            st.st_ctime_ns,
        ), p
    assert (code / "workspace").stat().st_uid == 0  # its oc_save/ was made, nothing re-owned
    for p in (memory, memory / "old-note.md", code / "workspace" / "oc_save"):
        assert (p.stat().st_uid, p.stat().st_gid) == (uid, gid), p
    st = code.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, gid, 0o770)
    assert (fleet.proposals_dir("oc").stat().st_uid, fleet.proposals_dir("oc").stat().st_gid) == (
        uid,
        gid,
    )


def test_wiring_twice_changes_nothing(fleet: FleetHome) -> None:
    bot = init_bot(fleet, "oc").bot
    runtime = DockerRuntime(fleet)
    runtime._prepare_host(bot)
    first = gateway_config.config_path(fleet, "oc").read_bytes()
    runtime._prepare_host(bot)
    assert gateway_config.config_path(fleet, "oc").read_bytes() == first


def test_missing_gateway_env_is_one_clear_error(fleet: FleetHome) -> None:
    bot = init_bot(fleet, "oc").bot
    fleet.gateway_env("oc").unlink()
    with pytest.raises(FleetError, match=r"cannot read .*gateway\.env") as info:
        DockerRuntime(fleet)._prepare_host(bot)
    assert "\n" not in str(info.value)


def test_json5_models_json_is_wired_and_the_known_good_config_kept(fleet: FleetHome) -> None:
    """The same wiring decision as the Lima runtime's (gateway.state_wiring)."""
    bot = init_bot(fleet, "oc").bot
    config_file = gateway_config.config_path(fleet, "oc")
    config_file.write_text("{\n  // mine\n  agents: {defaults: {}},\n}\n")
    agent = fleet.state_dir("oc") / "agents" / "main" / "agent"
    agent.mkdir(parents=True)
    (agent / "models.json").write_text("{providers: {openai: {baseUrl: 'https://x',},},}")
    DockerRuntime(fleet)._prepare_host(bot)
    good = gateway_config.known_good_path(fleet, "oc")
    assert good.read_text() == "{\n  // mine\n  agents: {defaults: {}},\n}\n"
    models = json.loads((agent / "models.json").read_text())
    assert models["providers"]["openai"]["baseUrl"] == "http://llm-proxy:9090/openai/v1"


def test_a_bad_models_json_is_refused_before_anything_is_written(fleet: FleetHome) -> None:
    bot = init_bot(fleet, "oc").bot
    config_file = gateway_config.config_path(fleet, "oc")
    config_file.write_text('{"agents": {}}\n')
    agent = fleet.state_dir("oc") / "agents" / "main" / "agent"
    agent.mkdir(parents=True)
    (agent / "models.json").write_text("{providers: ")
    with pytest.raises(CftuiError) as info:
        DockerRuntime(fleet)._prepare_host(bot)
    message = str(info.value)
    assert "\n" not in message and "models.json is not valid JSON5" in message
    assert config_file.read_text() == '{"agents": {}}\n'
    assert not gateway_config.known_good_path(fleet, "oc").exists()


def test_writable_paths_and_the_proposals_tree_are_made_before_start(fleet: FleetHome) -> None:
    bot = init_bot(fleet, "oc").bot
    DockerRuntime(fleet)._prepare_host(bot)
    code = fleet.code_dir("oc")
    for rel in ("workspace/memory", "workspace/oc_save"):
        assert (code / rel).is_dir() and not (code / rel).is_symlink()
    proposals = fleet.proposals_dir("oc")
    assert (proposals / "workspace").is_dir() and fleet.proposals_index("oc").is_file()
    note = (code / "workspace/memory/cftui-proposals.md").read_text()
    assert "/proposals/workspace/skills/" in note
    uid, gid = gateway_user()
    assert (proposals.stat().st_uid, proposals.stat().st_gid) == (uid, gid)
    assert (proposals / "workspace").stat().st_uid == uid
    # OpenClaw's own workspace is the approved tree.
    assert gateway_config.read_config(fleet, "oc")["agents"]["defaults"]["workspace"] == (
        "/code/workspace"
    )
    # A second start keeps what the agent proposed (the tree is seeded once).
    (proposals / "workspace" / "idea.md").write_text("idea\n")
    DockerRuntime(fleet)._prepare_host(bot)
    assert (proposals / "workspace" / "idea.md").read_text() == "idea\n"


def test_a_writable_path_through_a_link_is_refused_in_one_line(
    fleet: FleetHome, tmp_path: Path
) -> None:
    bot = init_bot(fleet, "oc").bot
    outside = tmp_path / "outside"
    outside.mkdir()
    memory = fleet.code_dir("oc") / "workspace" / "memory"
    if memory.exists():
        import shutil

        shutil.rmtree(memory)
    memory.symlink_to(outside)
    with pytest.raises(CftuiError) as err:
        DockerRuntime(fleet)._prepare_host(bot)
    assert "workspace/memory" in str(err.value) and "\n" not in str(err.value)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("plant", ["link", "fifo"])
def test_the_agents_plant_at_the_proposals_note_is_never_followed(
    fleet: FleetHome, tmp_path: Path, plant: str
) -> None:
    """The agent owns workspace/memory: the note cftui writes there may be a
    link to a host file or a fifo by the next start. Neither is followed,
    opened or replaced; the start says so in one line."""
    bot = init_bot(fleet, "oc").bot
    DockerRuntime(fleet)._prepare_host(bot)
    note = fleet.code_dir("oc") / "workspace/memory/cftui-proposals.md"
    note.unlink()
    host_file = tmp_path / "host-only"
    host_file.write_text("operator's\n")
    host_file.chmod(0o600)
    if plant == "link":
        note.symlink_to(host_file)
    else:
        os.mkfifo(note)
    with pytest.raises(CftuiError) as err:
        DockerRuntime(fleet)._prepare_host(bot)
    assert "cftui-proposals.md" in str(err.value) and "\n" not in str(err.value)
    assert host_file.read_text() == "operator's\n"
    assert oct(host_file.stat().st_mode & 0o777) == "0o600"
    assert note.is_symlink() if plant == "link" else not note.is_file()


def test_a_proposals_tree_swapped_for_a_link_is_refused(fleet: FleetHome, tmp_path: Path) -> None:
    bot = init_bot(fleet, "oc").bot
    outside = tmp_path / "outside"
    outside.mkdir()
    proposals = fleet.proposals_dir("oc")
    if proposals.exists():
        import shutil

        shutil.rmtree(proposals)
    proposals.symlink_to(outside)
    with pytest.raises(CftuiError) as err:
        DockerRuntime(fleet)._prepare_host(bot)
    assert "\n" not in str(err.value)
    assert list(outside.iterdir()) == []
