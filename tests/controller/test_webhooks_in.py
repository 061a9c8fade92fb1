"""GitHub webhooks in: a signed `push` to the approved branch (GitHub's
documented payload and headers) fast-forwards the bot to it, as `cftui
promote --from` does; a wrong or missing signature, a bot with no secret,
and a replayed delivery do nothing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from cftui.audit.events import read_events
from cftui.controller.secrets import bot_controller_env
from cftui.controller.webhooks_in import SEEN_BOUND, SeenDeliveries, decide
from cftui.fleet import FleetHome
from cftui.proposal_tree import seed
from cftui.securefs import atomic_write_private

SECRET = "It's a Secret to Everybody"  # the example of GitHub's documentation
BOT = "alpha"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


@pytest.fixture
def remote(fleet: FleetHome, tmp_path: Path) -> Path:
    """The GitHub side: a bare repository the approved code was pushed to,
    and the bot's webhook secret."""
    seed.seed(fleet, BOT)
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    code = fleet.code_dir(BOT)
    git(code, "remote", "add", "origin", str(bare))
    git(code, "push", "-q", "origin", "main")
    atomic_write_private(bot_controller_env(fleet, BOT), f"GITHUB_WEBHOOK_SECRET={SECRET}\n")
    return bare


def merged_upstream(tmp_path: Path, bare: Path, rel: str, text: str, branch: str = "main") -> str:
    """A reviewer's change, merged into `branch` on the remote."""
    work = tmp_path / "reviewer"
    if not work.exists():
        git(tmp_path, "clone", "-q", str(bare), str(work))
    git(work, "fetch", "-q", "origin")
    git(work, "checkout", "-q", "-B", branch, "origin/main")
    (work / rel).parent.mkdir(parents=True, exist_ok=True)
    (work / rel).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-qm", f"reviewed {rel}")
    git(work, "push", "-q", "-f", "origin", branch)
    return git(work, "rev-parse", "HEAD")


def push_payload(before: str, after: str, ref: str = "refs/heads/main") -> dict[str, Any]:
    """The shape of GitHub's `push` event (docs: webhook events and payloads)."""
    return {
        "ref": ref, "before": before, "after": after, "created": False, "deleted": False,
        "forced": False, "base_ref": None, "compare": "https://github.com/acme/bot/compare/x",
        "commits": [{"id": after, "message": "reviewed", "distinct": True}],
        "head_commit": {"id": after, "message": "reviewed"},
        "repository": {"id": 1, "name": "bot", "full_name": "acme/bot", "default_branch": "main"},
        "pusher": {"name": "octocat", "email": "octocat@example.invalid"},
        "sender": {"login": "octocat", "id": 1, "type": "User"},
    }  # fmt: skip


def pr_payload(action: str, merged: bool, base: str = "main", sha: str = "0" * 40) -> dict:
    return {
        "action": action, "number": 7,
        "pull_request": {
            "number": 7, "state": "closed", "merged": merged, "merge_commit_sha": sha,
            "base": {"ref": base, "sha": "1" * 40}, "head": {"ref": "feature", "sha": sha},
        },
        "repository": {"full_name": "acme/bot"}, "sender": {"login": "octocat"},
    }  # fmt: skip


def signed(payload: Any, event: str = "push", secret: str = SECRET, delivery: str | None = None):
    body = json.dumps(payload).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "292430182",
        "X-Hub-Signature-256": sig,
    }
    return body, headers


def head(fleet: FleetHome) -> str:
    return git(fleet.code_dir(BOT), "rev-parse", "HEAD")


async def test_the_documented_signature_example_verifies() -> None:
    # GitHub's docs: secret "It's a Secret to Everybody", payload "Hello, World!"
    from cftui.controller.webhooks_in import signature_ok

    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature_ok(SECRET.encode(), b"Hello, World!", expected)
    assert not signature_ok(SECRET.encode(), b"Hello, World!", expected[:-1] + "8")
    assert not signature_ok(None, b"Hello, World!", expected)


async def test_a_signed_push_to_the_approved_branch_promotes(
    fleet: FleetHome, remote: Path, tmp_path: Path, start_controller
) -> None:
    before = head(fleet)
    after = merged_upstream(tmp_path, remote, "workspace/TOOLS.md", "reviewed tools\n")
    c = await start_controller()
    status, answer = await c.post("/webhooks/github/alpha", *signed(push_payload(before, after)))
    assert status == 202 and answer == {"status": "promoting", "source": "origin/main"}
    await c.controller.idle()
    assert head(fleet) == after
    [promote] = [e for e in read_events(fleet, BOT) if e["action"] == "promote"]
    assert promote["source"] == "origin/main" and promote["commit"] == after
    [hook] = [e for e in read_events(fleet, BOT) if e["action"] == "webhook"]
    assert hook["event"] == "push" and hook["promote"] is True and hook["after"] == after
    assert any(f"promoted origin/main as {after[:12]}" in line for line in c.lines)


async def test_a_merged_pull_request_promotes_and_an_unmerged_one_does_not(
    fleet: FleetHome, remote: Path, tmp_path: Path, start_controller
) -> None:
    after = merged_upstream(tmp_path, remote, "a.md", "a\n")
    before = head(fleet)
    c = await start_controller()
    status, answer = await c.post(
        "/webhooks/github/alpha", *signed(pr_payload("closed", False), "pull_request")
    )
    assert status == 200 and answer["status"] == "ignored" and "not merged" in answer["reason"]
    status, _ = await c.post(
        "/webhooks/github/alpha", *signed(pr_payload("closed", True, base="dev"), "pull_request")
    )
    assert status == 200
    await c.controller.idle()
    assert head(fleet) == before
    status, answer = await c.post(
        "/webhooks/github/alpha", *signed(pr_payload("closed", True, sha=after), "pull_request")
    )
    assert status == 202
    await c.controller.idle()
    assert head(fleet) == after


async def test_other_branches_and_events_are_acknowledged_and_ignored(
    fleet: FleetHome, remote: Path, tmp_path: Path, start_controller
) -> None:
    after = merged_upstream(tmp_path, remote, "b.md", "b\n", branch="feature")
    before = head(fleet)
    c = await start_controller()
    for payload, event in (
        (push_payload(before, after, "refs/heads/feature"), "push"),
        (push_payload(before, after, "refs/tags/v1"), "push"),
        ({"zen": "Keep it logically awesome.", "hook_id": 1}, "ping"),
        ({"action": "opened"}, "issues"),
        ("a string, not an object", "push"),
    ):
        status, answer = await c.post("/webhooks/github/alpha", *signed(payload, event))
        assert status == 200 and answer["status"] == "ignored", (event, answer)
    await c.controller.idle()
    assert head(fleet) == before
    assert not [e for e in read_events(fleet, BOT) if e["action"] == "promote"]


async def test_a_wrong_or_missing_signature_does_nothing(
    fleet: FleetHome, remote: Path, tmp_path: Path, start_controller
) -> None:
    before = head(fleet)
    after = merged_upstream(tmp_path, remote, "c.md", "c\n")
    c = await start_controller()
    body, headers = signed(push_payload(before, after), secret="not the secret")
    missing = {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}
    sha1_only = {**missing, "X-Hub-Signature": "sha1=" + "0" * 40}
    tampered_body, good = signed(push_payload(before, after))
    for b, h in ((body, headers), (body, missing), (body, sha1_only),
                 (tampered_body + b" ", good)):  # fmt: skip
        status, answer = await c.post("/webhooks/github/alpha", b, h)
        assert status == 401 and answer == {"error": "signature refused"}
    await c.controller.idle()
    assert head(fleet) == before
    assert not [e for e in read_events(fleet, BOT) if e["action"] in ("webhook", "promote")]
    assert len(c.controller.deliveries) == 0  # nothing unverified is stored
    # the genuine delivery with the same id as the refused one still works
    status, _ = await c.post("/webhooks/github/alpha", tampered_body, good)
    assert status == 202


async def test_a_bot_without_a_webhook_secret_refuses_everything(
    fleet: FleetHome, remote: Path, start_controller
) -> None:
    c = await start_controller()
    body, headers = signed(push_payload("0" * 40, "1" * 40))
    status, _ = await c.post("/webhooks/github/beta", body, headers)  # beta has no secret
    assert status == 401
    assert any("no GITHUB_WEBHOOK_SECRET" in line for line in c.lines)


async def test_a_replayed_delivery_does_nothing_even_after_a_restart(
    fleet: FleetHome, remote: Path, tmp_path: Path, start_controller
) -> None:
    before = head(fleet)
    after = merged_upstream(tmp_path, remote, "d.md", "d\n")
    body, headers = signed(push_payload(before, after))
    c = await start_controller()
    assert (await c.post("/webhooks/github/alpha", body, headers))[0] == 202
    await c.controller.idle()
    assert head(fleet) == after
    second = merged_upstream(tmp_path, remote, "e.md", "e\n")  # the remote moved on
    status, answer = await c.post("/webhooks/github/alpha", body, headers)
    assert status == 200 and answer["status"] == "duplicate"
    await c.controller.aclose()
    c2 = await start_controller()
    status, answer = await c2.post("/webhooks/github/alpha", body, headers)
    assert status == 200 and answer["status"] == "duplicate"
    await c2.controller.idle()
    assert head(fleet) == after != second
    assert len([e for e in read_events(fleet, BOT) if e["action"] == "promote"]) == 1


async def test_hostile_requests_are_bounded_and_refused(
    fleet: FleetHome, remote: Path, start_controller
) -> None:
    c = await start_controller()
    big, headers = signed({"ref": "x" * (2 << 20)})
    status, _ = await c.post("/webhooks/github/alpha", big, headers)
    assert status == 413
    for path in ("/webhooks/github/..%2F..%2Fsecrets", "/webhooks/github/NoSuchBot",
                 "/webhooks/github/gamma"):  # fmt: skip
        status, _ = await c.post(path, *signed({}))
        assert status == 404, path
    body, headers = signed({}, delivery="../../etc/passwd")
    status, _ = await c.post("/webhooks/github/alpha", body, headers)
    assert status == 400
    body, headers = signed({}, event="push\nX-Evil: 1".replace("\n", " "))
    status, _ = await c.post("/webhooks/github/alpha", body, headers)
    assert status == 400


async def test_a_promote_that_fails_is_recorded_and_said_in_one_line(
    fleet: FleetHome, remote: Path, tmp_path: Path, start_controller
) -> None:
    before = head(fleet)
    c = await start_controller()
    # the remote's main does not contain the approved head: no fast-forward
    git(fleet.code_dir(BOT), "commit", "-q", "--allow-empty", "-m", "local only")
    merged_upstream(tmp_path, remote, "f.md", "f\n")
    status, _ = await c.post("/webhooks/github/alpha", *signed(push_payload(before, "2" * 40)))
    assert status == 202
    await c.controller.idle()
    [failed] = [e for e in read_events(fleet, BOT) if e["action"] == "promote"]
    assert failed["ok"] is False and "does not fast-forward" in failed["error"]


def test_seen_deliveries_are_bounded(fleet: FleetHome) -> None:
    seen = SeenDeliveries(fleet, bound=3)
    for i in range(5):
        assert seen.add(f"d{i}")
    assert not seen.add("d4") and len(seen) == 3
    assert seen.add("d0")  # forgotten past the bound
    assert SEEN_BOUND >= 1000


def test_decide_is_strict_about_the_branch() -> None:
    assert decide("push", {"ref": "refs/heads/main"}, "origin", "main").promote
    assert not decide("push", {"ref": "refs/heads/mainx"}, "origin", "main").promote
    assert not decide("push", {"ref": "refs/heads/main", "deleted": True}, "origin", "main").promote


async def test_two_pushes_at_once_promote_one_after_the_other(
    fleet: FleetHome, remote: Path, tmp_path: Path, start_controller
) -> None:
    before = head(fleet)
    after = merged_upstream(tmp_path, remote, "g.md", "g\n")
    c = await start_controller()
    results = await asyncio.gather(
        c.post("/webhooks/github/alpha", *signed(push_payload(before, after))),
        c.post("/webhooks/github/alpha", *signed(push_payload(before, after))),
    )
    assert [s for s, _ in results] == [202, 202]
    await c.controller.idle()
    assert head(fleet) == after
    assert len([e for e in read_events(fleet, BOT) if e["action"] == "promote"]) == 1
    assert any("nothing to promote" in line for line in c.lines)
