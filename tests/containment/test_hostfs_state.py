"""The agent plants links, fifos and hard links in its `state/`; the
operator's next start (restart, restore: all go through the same host
preparation) or `cftui config` must refuse them in one line, read nothing
through them, write nothing through them and give nothing away.

Played on the host side with the real runtime code: these are the files a
gateway container can write, at the paths it writes them."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cftui import gateway_config
from cftui.botinit import init_bot
from cftui.errors import CftuiError
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime.docker.runtime import DockerRuntime

SECRET = "sk-host-only-0600-secret"


@pytest.fixture
def fleet(tmp_path: Path) -> FleetHome:
    return FleetHome(tmp_path / "home")


@pytest.fixture
def host_secret(tmp_path: Path) -> Path:
    """A root-only file on the host, as JSON so a config reader would take it."""
    path = tmp_path / "host" / "secret.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"apiKey": SECRET}))
    os.chmod(path, 0o600)
    return path


def _bot(fleet: FleetHome, name: str = "red1") -> BotConfig:
    bot = init_bot(fleet, name).bot
    assert bot.gateway == "openclaw"
    return bot


def _prepare(fleet: FleetHome, bot: BotConfig) -> CftuiError:
    """The host side of a start; the refusal it must end with."""
    with pytest.raises(CftuiError) as info:
        DockerRuntime(fleet)._prepare_host(bot)
    message = str(info.value)
    assert "\n" not in message, message
    return info.value


def _state_holds_no(fleet: FleetHome, bot: str, needle: str) -> None:
    for dirpath, _dirs, files in os.walk(fleet.state_dir(bot)):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink() and stat.S_ISREG(path.lstat().st_mode):
                assert needle not in path.read_text(errors="replace"), path


def _untouched(path: Path, before: os.stat_result, text: str) -> None:
    st = os.stat(path)
    assert path.read_text() == text
    assert (st.st_uid, st.st_gid, st.st_mode) == (before.st_uid, before.st_gid, before.st_mode)


def test_start_refuses_openclaw_json_linked_to_a_host_file(
    fleet: FleetHome, host_secret: Path
) -> None:
    bot = _bot(fleet)
    config = gateway_config.config_path(fleet, bot.name)
    config.unlink(missing_ok=True)
    config.symlink_to(host_secret)
    before, text = os.stat(host_secret), host_secret.read_text()
    err = _prepare(fleet, bot)
    assert str(config) in str(err) and "symbolic link" in str(err)
    assert "remove it" in str(err)  # what to do
    _untouched(host_secret, before, text)
    assert not gateway_config.known_good_path(fleet, bot.name).exists()
    assert config.is_symlink()  # state otherwise left as it was
    _state_holds_no(fleet, bot.name, SECRET)


def test_start_refuses_a_link_to_another_bots_config(fleet: FleetHome) -> None:
    red1, red2 = _bot(fleet, "red1"), _bot(fleet, "red2")
    DockerRuntime(fleet)._prepare_host(red2)  # red2's config now holds its tokens
    red2_token = gateway_config.read_config(fleet, "red2")["gateway"]["auth"]["token"]
    config = gateway_config.config_path(fleet, "red1")
    config.unlink(missing_ok=True)
    config.symlink_to("../../red2/state/openclaw.json")
    assert config.resolve() == gateway_config.config_path(fleet, "red2").resolve()
    before = gateway_config.config_path(fleet, "red2").read_bytes()
    _prepare(fleet, red1)
    _state_holds_no(fleet, "red1", red2_token)
    assert gateway_config.config_path(fleet, "red2").read_bytes() == before


def test_start_refuses_a_models_json_linked_out(fleet: FleetHome, host_secret: Path) -> None:
    bot = _bot(fleet)
    agent = fleet.state_dir(bot.name) / "agents" / "main" / "agent"
    agent.mkdir(parents=True)
    (agent / "models.json").symlink_to(host_secret)
    before, text = os.stat(host_secret), host_secret.read_text()
    err = _prepare(fleet, bot)
    assert "models.json" in str(err)
    _untouched(host_secret, before, text)
    _state_holds_no(fleet, bot.name, SECRET)


def test_start_refuses_an_agent_directory_linked_out(fleet: FleetHome, host_secret: Path) -> None:
    bot = _bot(fleet)
    (fleet.state_dir(bot.name) / "agents").mkdir()
    fake = host_secret.parent / "agent"
    fake.mkdir()
    (fake / "models.json").write_text(
        json.dumps({"providers": {"anthropic": {"baseUrl": "https://x", "apiKey": SECRET}}})
    )
    os.chmod(fake / "models.json", 0o600)
    (fleet.state_dir(bot.name) / "agents" / "evil").symlink_to(host_secret.parent)
    before = (fake / "models.json").read_bytes()
    err = _prepare(fleet, bot)
    assert "agents/evil" in str(err)
    assert (fake / "models.json").read_bytes() == before
    assert os.stat(fake / "models.json").st_uid == os.getuid()


def test_start_refuses_a_fifo_as_config_without_hanging(fleet: FleetHome) -> None:
    bot = _bot(fleet)
    config = gateway_config.config_path(fleet, bot.name)
    config.unlink(missing_ok=True)
    os.mkfifo(config)
    err = _prepare(fleet, bot)
    assert "fifo" in str(err)


@pytest.mark.skipif(os.geteuid() != 0, reason="the gateway is handed files only under root")
def test_start_gives_no_hard_linked_host_file_to_the_gateway(
    fleet: FleetHome, host_secret: Path
) -> None:
    bot = _bot(fleet)
    before, text = os.stat(host_secret), host_secret.read_text()
    os.link(host_secret, fleet.state_dir(bot.name) / "loot.json")
    DockerRuntime(fleet)._prepare_host(bot)  # not a file cftui reads: the start goes on
    _untouched(host_secret, before, text)


@pytest.mark.skipif(os.geteuid() != 0, reason="the gateway is handed files only under root")
def test_a_hard_linked_config_is_refused(fleet: FleetHome, host_secret: Path) -> None:
    bot = _bot(fleet)
    config = gateway_config.config_path(fleet, bot.name)
    config.unlink(missing_ok=True)
    os.link(host_secret, config)
    before, text = os.stat(host_secret), host_secret.read_text()
    err = _prepare(fleet, bot)
    assert "hard link" in str(err)
    _untouched(host_secret, before, text)
    assert not gateway_config.known_good_path(fleet, bot.name).exists()


def test_known_good_linked_out_is_refused_not_written_through(
    fleet: FleetHome, host_secret: Path
) -> None:
    bot = _bot(fleet)
    DockerRuntime(fleet)._prepare_host(bot)
    good = gateway_config.known_good_path(fleet, bot.name)
    good.unlink(missing_ok=True)
    good.symlink_to(host_secret)
    before, text = os.stat(host_secret), host_secret.read_text()
    with pytest.raises(CftuiError, match="symbolic link"):
        gateway_config.set_keys(fleet, bot.name, ["agents.defaults.model.primary=x/y"])
    _untouched(host_secret, before, text)
    with pytest.raises(CftuiError, match="symbolic link"):
        gateway_config.revert(fleet, bot.name)


def test_cli_config_refuses_a_linked_config_in_one_line(
    home: FleetHome, cli, host_secret: Path
) -> None:
    _bot(home)
    config = gateway_config.config_path(home, "red1")
    config.unlink(missing_ok=True)
    config.symlink_to(host_secret)
    for args in (["config", "red1", "--reveal"], ["config", "red1", "--set", "a.b=1"]):
        res = cli(*args)
        assert res.code == 1, res
        assert SECRET not in res.out + res.err
        assert res.err.count("\n") == 1 and "Traceback" not in res.err
        assert "symbolic link" in res.err
