"""`cf-egress` from the app's environment, which has the script but not
mitmproxy (issue #23): one line naming the egress venv, no traceback."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_cf_egress_without_mitmproxy_says_where_it_runs_in_one_line(tmp_path: Path) -> None:
    # The tests run in the app's .venv, which never has mitmproxy (it pins
    # an older cryptography): this is the operator's `.venv/bin/cf-egress`.
    assert importlib.util.find_spec("mitmproxy") is None, "the app's venv should lack mitmproxy"
    script = BIN / "cf-egress"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "cfproxies.egress"]
    for extra in ([], ["--bot", "b", "--audit-dir", str(tmp_path), "--confdir", str(tmp_path)]):
        proc = subprocess.run([*argv, *extra], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1
        assert "Traceback" not in proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith("cf-egress: mitmproxy")
        assert ".venv-egress/bin/cf-egress" in line and sys.prefix in line
