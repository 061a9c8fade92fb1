"""What can be checked without a VM: the template against Lima's documented
schema, the units with `systemd-analyze verify`, the shell scripts' syntax,
and the host-side plan (users, ports, env files, the gateway's command)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from cfproxies.egress.patterns import parse_allow_lines

from cftui.errors import FleetError, RuntimeOperationError
from cftui.fleet import BotConfig, LimaVM, Limits
from cftui.runtime.lima.assets import render_template
from cftui.runtime.lima.ctl import parse_list_json
from cftui.runtime.lima.plan import (
    MAX_USER,
    bot_env,
    command_from_dockerfile,
    egress_allow_file,
    gateway_argv,
    gateway_conf,
    gateway_secret_env,
    ports_for,
    service_of_unit,
    unit_name,
    unix_user,
)
from cftui.runtime.lima.ssh import parse_ssh_config

from .lima_schema import ARCHES, PROBE_MODES, PROVISION_MODES, VM_TYPES, unknown_keys

REPO = Path(__file__).parents[2]
LIMA = REPO / "lima"


@pytest.fixture
def rendered(tmp_path: Path) -> dict:
    return yaml.safe_load(render_template(tmp_path / "t.yaml").read_text())


def test_template_uses_only_documented_lima_keys(rendered):
    assert unknown_keys(rendered) == []
    assert rendered["vmType"] in VM_TYPES
    assert {img["arch"] for img in rendered["images"]} <= ARCHES
    assert all(img["location"].startswith("https://") for img in rendered["images"])
    assert {p["mode"] for p in rendered["provision"]} <= PROVISION_MODES
    assert {p["mode"] for p in rendered["probes"]} <= PROBE_MODES
    assert all(p["script"].startswith("#!") for p in rendered["probes"])
    assert re.fullmatch(r"\d+GiB", rendered["memory"]) and re.fullmatch(r"\d+GiB", rendered["disk"])


def test_template_keeps_the_host_out_of_the_vm(rendered):
    assert rendered["mounts"] == []
    assert rendered["propagateProxyEnv"] is False
    assert rendered["containerd"] == {"system": False, "user": False}
    assert rendered["ssh"]["forwardAgent"] is False
    # Only the fronts' ports are forwarded; a final rule ignores the rest.
    assert rendered["portForwards"][-1]["ignore"] is True
    assert rendered["portForwards"][0]["guestPortRange"] == [18801, 18999]


def test_template_inlines_the_system_provisioning_script(rendered):
    script = rendered["provision"][0]["script"]
    assert script.startswith("#!/bin/bash")
    assert (LIMA / "provision" / "system.sh").read_text().strip().splitlines()[-1] in script
    proc = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(not shutil.which("limactl"), reason="real limactl not installed here")
def test_template_validates_with_real_limactl(tmp_path):  # pragma: no cover - macOS only
    path = render_template(tmp_path / "clawfactory.yaml")
    proc = subprocess.run(["limactl", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("script", sorted((LIMA / "provision").glob("*.sh")), ids=lambda p: p.name)
def test_provisioning_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze missing")
def test_units_pass_systemd_analyze_verify(tmp_path):
    for unit in (LIMA / "systemd").glob("*.service"):
        shutil.copy(unit, tmp_path / unit.name.replace("@.", "@demo."))
    proc = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        env={"SYSTEMD_LOG_LEVEL": "warning", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    # Paths that exist only in a provisioned VM are reported; nothing else may be.
    problems = [
        ln
        for ln in proc.stderr.splitlines()
        if ln.strip()
        and "is not executable: No such file or directory" not in ln
        and "Command /opt/clawfactory" not in ln
        and "/usr/local/lib/clawfactory" not in ln
        and "Failed to prepare filename" not in ln
    ]
    assert problems == [], "\n".join(problems)


def test_every_unit_is_hardened():
    for unit in (LIMA / "systemd").glob("*.service"):
        text = unit.read_text()
        for line in (
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "NoNewPrivileges=yes",
            "CapabilityBoundingSet=\n",
        ):
            assert line in text, f"{unit.name} lacks {line.strip()}"
    gw = (LIMA / "systemd" / "cf-gateway@.service").read_text()
    assert "/srv/clawfactory/secrets" in gw and "/srv/clawfactory/audit" in gw  # inaccessible
    # /code is the approved tree, read-only; only gateway-paths.sh's per-bot
    # drop-in grants /state, /proposals and the writable paths.
    assert "BindReadOnlyPaths=/srv/clawfactory/bots/%i/code:/code\n" in gw
    assert "\nReadWritePaths" not in gw
    setup = (LIMA / "provision" / "bot-setup.sh").read_text()
    gw_dropin = setup[setup.index('dropin "cf-gateway@') : setup.index('dropin "cf-llm-proxy@')]
    assert "ReadWritePaths" not in gw_dropin and "MemoryMax=" in gw_dropin
    paths = (LIMA / "provision" / "gateway-paths.sh").read_text()
    assert 'rw="/state /proposals"' in paths and "ReadWritePaths=%s" in paths


def _bot(name: str = "b1", **kw) -> BotConfig:
    return BotConfig(name=name, runtime="lima", gateway="generic", lima=LimaVM(), **kw)


def test_users_fit_linux_limits_and_differ_per_service_and_bot():
    long = "a" + "b" * 30
    names = {
        unix_user(s, b)
        for s in ("gateway", "llm-proxy", "egress", "front")
        for b in ("x", long, long[:-1] + "c")
    }
    assert len(names) == 12
    assert all(len(n) <= MAX_USER and re.fullmatch(r"[a-z][a-z0-9-]*", n) for n in names)


def test_ports_are_distinct_per_bot_and_service():
    a, b = ports_for(_bot(gateway_port=18801)), ports_for(_bot(gateway_port=18999))
    allp = [a.front, a.gateway, a.llm, a.egress, b.front, b.gateway, b.llm, b.egress]
    assert len(set(allp)) == 8 and max(allp) < 65536


def test_unit_names_round_trip():
    for s in ("front", "gateway", "llm-proxy", "egress"):
        assert service_of_unit(unit_name(s, "my-bot")) == (s, "my-bot")
    assert service_of_unit("ssh.service") is None


def test_bot_env_holds_no_secret_and_quotes_arguments():
    env = bot_env(
        _bot(egress_allow=("*.github.com",), upstreams={"anthropic": "http://h:1"}),
        "age1recipient",
    )
    # The allowlist is a file of its own: a rule holds spaces systemd would split on.
    assert "CF_EGRESS_ARGS=--allow-file=/etc/clawfactory/bots/b1/egress.allow" in env
    assert "github" not in env
    assert "CF_LLM_ARGS=--upstream=anthropic=http://h:1" in env
    assert "TOKEN" not in env and "KEY" not in env


def test_the_egress_allow_file_holds_one_entry_a_line_rules_and_all():
    bot = _bot(egress_allow=("*.github.com", "api.github.com get,HEAD /repos/acme/  /x/"))
    text = egress_allow_file(bot)
    assert text == "*.github.com\napi.github.com GET,HEAD /repos/acme/ /x/\n"
    assert parse_allow_lines(text) == ["*.github.com", "api.github.com GET,HEAD /repos/acme/ /x/"]


@pytest.mark.parametrize("pattern", ["a'b", "a b", "$HOME", "a.example GET x"])
def test_a_bad_allowlist_entry_is_refused_before_the_vm_is_touched(pattern):
    with pytest.raises(FleetError, match=r"fleet.toml: \[bots.b1\] egress_allow: bad egress"):
        egress_allow_file(_bot(egress_allow=(pattern,)))


@pytest.mark.parametrize("arg", ["a'b", "a b", "$HOME"])
def test_bot_env_refuses_what_systemd_would_split_or_expand(arg):
    with pytest.raises(RuntimeOperationError, match="cannot hold"):
        bot_env(_bot(upstreams={"anthropic": f"http://{arg}"}), "age1x")


def test_secret_env_gives_the_proxy_token_under_every_provider_key():
    text = gateway_secret_env({"CF_PROXY_TOKEN": "cfp_t", "OPENCLAW_GATEWAY_TOKEN": "g"})
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY"):
        assert f"{key}=cfp_t" in text


def test_demo_agent_command_maps_image_paths_to_code():
    text = (REPO / "cftui" / "templates" / "demo-agent" / "Dockerfile").read_text()
    argv, env = command_from_dockerfile(text)
    assert argv == ["python3", "/code/agent.py"]
    assert env["DEMO_INTERVAL_S"] == "5"


@pytest.mark.parametrize(
    ("dockerfile", "argv"),
    [
        ('COPY . /app\nCMD ["node", "/app/dist/index.js"]', ["node", "/code/dist/index.js"]),
        ('COPY src/ /srv/app/\nENTRYPOINT ["python3"]\nCMD ["/srv/app/main.py"]', ["python3", "/code/src/main.py"]),
        ('COPY --chown=1000 run.sh /usr/local/bin/run\nCMD ["/usr/local/bin/run", "--x"]', ["/code/run.sh", "--x"]),
    ],
)  # fmt: skip
def test_dockerfile_commands_map_to_code(dockerfile, argv):
    assert command_from_dockerfile(dockerfile)[0] == argv


def test_dockerfile_without_exec_cmd_is_a_clear_error():
    with pytest.raises(RuntimeOperationError, match="lima-command"):
        command_from_dockerfile("FROM x\nCMD python3 app.py\n")


def test_lima_command_file_overrides_and_openclaw_binds_loopback(tmp_path):
    (tmp_path / ".clawfactory").mkdir()
    (tmp_path / ".clawfactory" / "lima-command").write_text("python3 '/code/my agent.py'\n")
    assert gateway_argv(_bot(), tmp_path)[0] == ["python3", "/code/my agent.py"]
    oc = BotConfig(name="oc", runtime="lima", gateway="openclaw", gateway_port=18805)
    argv, _ = gateway_argv(oc, tmp_path / "nothing")
    assert argv == ["openclaw", "gateway", "--port", "20805", "--bind", "loopback"]
    template = REPO / "cftui" / "templates"
    assert gateway_argv(oc, template / "openclaw")[0][0] == "openclaw"
    # What `cftui init --code demo-agent` calls "openclaw" runs as its Dockerfile says.
    assert gateway_argv(oc, template / "demo-agent")[0] == ["python3", "/code/agent.py"]


def test_gateway_conf_points_every_client_at_the_bots_own_proxies():
    bot = _bot(gateway_port=18802, limits=Limits(memory_mb=1024))
    conf = gateway_conf(bot, ["python3", "/code/agent.py"], {"A": "1"}, "http://127.0.0.1:22/")
    p = ports_for(bot)
    assert f"ANTHROPIC_BASE_URL=http://127.0.0.1:{p.llm}/anthropic" in conf
    assert f"HTTPS_PROXY=http://127.0.0.1:{p.egress}" in conf
    assert "NODE_OPTIONS=--max-old-space-size=768" in conf
    assert "A=1" in conf and "CF_DEMO_PROBE_URL=http://127.0.0.1:22/" in conf


def test_limactl_list_json_lines_and_arrays_parse():
    rows = [
        {
            "name": "a",
            "status": "Running",
            "sshLocalPort": 60022,
            "vmType": "vz",
            "memory": 4294967296,
        },
        {"name": "b", "status": "Stopped", "sshLocalPort": 0},
    ]
    for text in ("\n".join(json.dumps(r) for r in rows), json.dumps(rows)):
        got = parse_list_json(text)
        assert got["a"].running and got["a"].ssh_port == 60022 and got["a"].vm_type == "vz"
        assert not got["b"].running
    assert parse_list_json("") == {}


def test_ssh_config_in_limas_format_is_read(tmp_path):
    cfg = tmp_path / "ssh.config"
    cfg.write_text(
        "# This SSH config file can be passed to 'ssh -F'.\n"
        "Host lima-clawfactory\n"
        '  IdentityFile "/Users/op/.lima/_config/user"\n'
        "  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n"
        '  ControlPath "/Users/op/.lima/clawfactory/ssh.sock"\n'
        "  User op\n"
        "  Hostname 127.0.0.1\n"
        "  Port 60123\n"
    )
    s = parse_ssh_config(cfg)
    assert (s.alias, s.user, s.hostname, s.port) == ("lima-clawfactory", "op", "127.0.0.1", 60123)
    assert s.identity_files == ("/Users/op/.lima/_config/user",)


def test_openclaw_config_points_at_loopback_proxies_and_keeps_other_keys():
    from cftui.runtime.lima.plan import openclaw_config, openclaw_models_json

    bot = BotConfig(name="oc", runtime="lima", gateway="openclaw", gateway_port=18803)
    p = ports_for(bot)
    cfg = {
        "models": {"providers": {"anthropic": {"baseUrl": "https://api.anthropic.com"}}},
        "agents": {"defaults": {"workspace": "/state/workspace"}},
    }
    out = openclaw_config(cfg, bot, proxy_token="cfp_t", gateway_token="cfg_g")
    prov = out["models"]["providers"]["anthropic"]
    assert prov == {"baseUrl": f"http://127.0.0.1:{p.llm}/anthropic", "apiKey": "cfp_t"}
    assert out["proxy"]["proxyUrl"] == f"http://127.0.0.1:{p.egress}"
    assert out["gateway"]["port"] == p.gateway and out["gateway"]["bind"] == "loopback"
    assert out["gateway"]["auth"] == {"mode": "token", "token": "cfg_g"}
    # OpenClaw's workspace is the approved tree, read-only at /code as in Docker.
    assert out["agents"] == {"defaults": {"workspace": "/code/workspace"}}
    models = {"providers": {"openai": {"baseUrl": "https://api.openai.com/v1", "apiKey": "sk-x"}}}
    got = openclaw_models_json(models, bot, proxy_token="cfp_t")["providers"]["openai"]
    assert got == {"baseUrl": f"http://127.0.0.1:{p.llm}/openai/v1", "apiKey": "cfp_t"}


def test_kill_script_cuts_every_gateway_before_killing_any():
    from cftui.runtime.lima.kill import kill_scripts

    first, rest = kill_scripts(["a1", "b2"])
    assert first.index("out-b2") < first.index("systemctl kill -s KILL")
    assert "systemctl kill -s KILL cf-gateway@a1.service cf-gateway@b2.service" in first
    assert "cf-front@a1.service" in rest and "cf-gateway" not in rest.split("@running")[0]
    # Then every process of each gateway's user, in its unit or not, in the same round trip.
    for n in ("a1", "b2"):
        stray = f"runuser -u cfgw-{n} -- kill -KILL -1"
        assert first.index("systemctl kill -s KILL") < first.index(stray) < first.index("@now")


def test_kill_output_fills_each_bots_report():
    from cftui.runtime.base import KillReport
    from cftui.runtime.lima.kill import parse_kill

    names = ["a1", "b2"]
    reports = {n: KillReport(n) for n in names}
    first = "@cut a1\n@was\nactive\ninactive\n@now\nfailed\ninactive\n"
    assert parse_kill(first, names, reports, "gateway") is None
    assert reports["a1"].network_cut and not reports["b2"].network_cut
    assert reports["a1"].gateway_killed and reports["b2"].gateway_killed
    assert reports["b2"].already_gone == ["gateway"] and reports["a1"].already_gone == []
    rest = "@rest\ninactive\ninactive\nactive\ninactive\ninactive\ninactive\n@running 0\n"
    assert parse_kill(rest, names, reports, "rest") == 0
    assert reports["a1"].stopped == ["front", "llm-proxy"]
    assert reports["b2"].stopped == ["front", "llm-proxy", "egress"]


def test_systemctl_show_maps_to_service_states():
    from cftui.runtime.lima.units import parse_show, service_status

    text = (
        "Id=cf-gateway@x.service\nLoadState=loaded\nActiveState=active\nSubState=running\n"
        "Result=success\nActiveEnterTimestamp=@1700000000\n\n"
        "Id=cf-egress@x.service\nLoadState=loaded\nActiveState=activating\n"
        "SubState=auto-restart\nResult=exit-code\nActiveEnterTimestamp=\n\n"
        "Id=cf-front@x.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\n"
    )
    units = parse_show(text)
    gw = service_status("gateway", units["cf-gateway@x.service"], False)
    assert gw.state == "running" and gw.started_at.timestamp() == 1700000000
    assert service_status("egress", units["cf-egress@x.service"], False).state == "restarting"
    assert service_status("front", units["cf-front@x.service"], False).state == "missing"
    dead = {"LoadState": "loaded", "ActiveState": "failed", "SubState": "failed"}
    assert service_status("gateway", dead, True).state == "killed"
    assert service_status("gateway", dead, False).state == "stopped"


def test_list_units_lines_parse():
    from cftui.runtime.lima.units import parse_list_units

    text = (
        "cf-gateway@x.service loaded active running ClawFactory gateway of bot x\n"
        "cf-egress@x.service loaded failed failed ClawFactory egress proxy of bot x\n"
    )
    units = parse_list_units(text)
    assert units["cf-gateway@x.service"]["ActiveState"] == "active"
    assert units["cf-egress@x.service"]["SubState"] == "failed"


def test_writable_paths_for_the_vm_drop_nested_ones_and_refuse_unit_syntax():
    from cftui.runtime.lima.plan import writable_paths

    bot = _bot(writable=("workspace/memory/daily", "workspace/memory", "workspace/b1_save"))
    assert writable_paths(bot) == ["workspace/b1_save", "workspace/memory"]
    assert writable_paths(_bot()) == ["workspace/b1_save", "workspace/memory"]
    for bad in ("work space", "a/%n", "a/$X", "a\nb"):
        with pytest.raises(RuntimeOperationError, match="cannot be writable in a Lima VM"):
            writable_paths(_bot(writable=(bad,)))
