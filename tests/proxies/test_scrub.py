"""Scrubbing: built-in secret shapes, the operator's rules, rules that would
backtrack forever, and malformed rule files, before anything is written."""

from __future__ import annotations

import json
import time

import pytest
from cfproxies.scrub import (
    BUILTIN_RULES,
    SECRET_KEYS,
    ReloadingScrubber,
    Scrubber,
    load_user_rules,
    parse_user_rules,
)

from tests.proxies.proxyhelpers import AUTH, anthropic_body

SECRETS = {
    "anthropic-key": "sk-ant-api03-" + "a1B2" * 20,
    "anthropic-oauth": "sk-ant-oat01-" + "z9Y8" * 20,
    "openai-key": "sk-proj-" + "Q" * 48,
    "openai-legacy": "sk-" + "x7" * 24,
    "openrouter-key": "sk-or-v1-" + "ab12" * 16,
    "google-key": "AIza" + "S" * 35,
    "github-token": "ghp_" + "g" * 36,
    "github-pat": "github_pat_" + "P" * 60,
    "aws-key-id": "AKIA" + "ABCDEFGHIJKLMNOP",
    "slack": "xoxb-" + "1234567890-abcdefghij",
}


@pytest.mark.parametrize(("kind", "secret"), SECRETS.items())
def test_builtin_rules_replace_provider_keys_and_tokens(kind, secret):
    text, count = Scrubber().scrub(f"before {secret} after")
    assert secret not in text
    assert text.startswith("before [REDACTED:") and text.endswith("] after")
    assert count == 1


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("Authorization: Bearer abc.def-ghi_123", "abc.def-ghi_123"),
        ("cookie: session=s3cr3t; theme=dark", "session=s3cr3t"),
        ("Set-Cookie: sid=zzz123; Path=/; HttpOnly", "sid=zzz123"),
        ("aws_secret_access_key = " + "w" * 40, "w" * 40),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----",
            "b3BlbnNzaC1rZXk",
        ),
        ("-----BEGIN PRIVATE KEY-----\nMIIEv truncated body with no end", "MIIEv"),
    ],
)
def test_builtin_rules_cover_bearer_cookies_aws_and_private_keys(text, gone):
    scrubbed, count = Scrubber().scrub(text)
    assert gone not in scrubbed
    assert count >= 1


def test_secret_keys_in_json_are_redacted_whatever_their_value_looks_like():
    value = {
        "headers": {"Authorization": "Basic dXNlcjpwdw==", "X-Api-Key": "short"},
        "max_tokens": 5,
    }
    scrubbed, count = Scrubber().scrub(value)
    assert scrubbed["headers"]["Authorization"] == "[REDACTED:authorization]"
    assert scrubbed["headers"]["X-Api-Key"] == "[REDACTED:x-api-key]"
    assert scrubbed["max_tokens"] == 5
    assert count == 2


def test_ordinary_text_is_left_alone():
    text = "Ask me about a cookie recipe, the skeleton key, and task-ant-colony sizes."
    assert Scrubber().scrub(text) == (text, 0)


def test_user_rules_apply_with_their_own_replacement(tmp_path):
    path = tmp_path / "scrub_rules.json"
    path.write_text(
        json.dumps(
            {
                "rules": [
                    {"name": "employee-id", "pattern": r"EMP-\d{6}"},
                    {"pattern": "project[- ]falcon", "replace": "[codename]", "ignore_case": True},
                    r"\b\d{3}-\d{2}-\d{4}\b",
                ]
            }
        )
    )
    scrubber = Scrubber.from_file(path)
    assert scrubber.errors == []
    out, count = scrubber.scrub("EMP-123456 works on Project Falcon, ssn 123-45-6789")
    assert out == "[REDACTED:employee-id] works on [codename], ssn [REDACTED:user-2]"
    assert count == 3


def test_catastrophic_user_rule_is_bounded_and_fails_closed():
    rules, errors = parse_user_rules([{"name": "evil", "pattern": r"(a|aa)+$"}])
    assert not errors
    scrubber = Scrubber(rules, timeout_s=0.05, budget_s=0.2)
    victims = ["a" * 40 + "!" for _ in range(20)]
    start = time.monotonic()
    out, _ = scrubber.scrub({"m": victims})
    elapsed = time.monotonic() - start
    assert elapsed < 1.5, f"a user rule held the scrubber for {elapsed:.2f}s"
    assert all(v.startswith("[REDACTED:scrub-") for v in out["m"])
    assert scrubber.timeouts >= 1


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('{"rules": "oops"}', "expected a list"),
        ('[{"pattern": "(unclosed"}]', "not a valid regex"),
        ('[{"name": "no pattern"}]', "no 'pattern'"),
    ],
)
def test_malformed_rules_file_is_reported_not_fatal(tmp_path, content, problem):
    path = tmp_path / "scrub_rules.json"
    path.write_text(content)
    rules, errors = load_user_rules(path)
    assert rules == []
    assert len(errors) == 1 and problem in errors[0]
    # The built-in rules still apply.
    scrubber = Scrubber.from_file(path)
    assert SECRETS["openai-key"] not in scrubber.scrub_text(SECRETS["openai-key"])


async def test_secrets_in_bodies_never_reach_traffic_jsonl(start_proxy, client, audit_dir):
    (audit_dir / "scrub_rules.json").write_text(json.dumps([{"pattern": "hunter2"}]))
    proxy = await start_proxy()
    text = "hunter2 " + " ".join(SECRETS.values()) + " Bearer abcdefgh12345678"
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(text=text), headers=AUTH
    ) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert "hunter2" in answer["content"][0]["text"]  # the client gets the real thing
    (rec,) = await proxy.wait_records(1)
    logged = proxy.log_path.read_text()
    for secret in [*SECRETS.values(), "hunter2", "abcdefgh12345678"]:
        assert secret not in logged
    assert rec["scrubbed"] >= len(SECRETS) + 2  # the request alone holds this many


async def test_broken_rules_file_shows_on_health_and_calls_still_go(
    start_proxy, client, audit_dir, capfd
):
    (audit_dir / "scrub_rules.json").write_text("{broken")
    proxy = await start_proxy()
    assert "not valid JSON" in capfd.readouterr().err
    async with client.get(f"{proxy.url}/health") as resp:
        health = await resp.json()
    assert "not valid JSON" in health["scrub"]["errors"][0]
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(), headers=AUTH
    ) as resp:
        assert resp.status == 200
    assert len(await proxy.wait_records(1)) == 1


async def test_catastrophic_rule_does_not_hang_the_proxy(start_proxy, client, audit_dir):
    (audit_dir / "scrub_rules.json").write_text(
        json.dumps([{"name": "evil", "pattern": "(x|xx)+$"}])
    )
    proxy = await start_proxy()
    start = time.monotonic()
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages",
        json=anthropic_body(text="x" * 5000 + "!"),
        headers=AUTH,
    ) as resp:
        assert resp.status == 200
    (rec,) = await proxy.wait_records(1)
    assert rec["scrubbed"] >= 1
    assert time.monotonic() - start < 3
    assert "x" * 5000 not in proxy.log_path.read_text()
    async with client.get(f"{proxy.url}/health") as resp:
        assert (await resp.json())["scrub"]["timeouts"] >= 1


async def test_rules_file_edits_apply_without_restart(start_proxy, client, audit_dir):
    proxy = await start_proxy()
    rules = audit_dir / "scrub_rules.json"
    rules.write_text(json.dumps(["zebra-\\d+"]))
    proxy.state.scrubber._checked = 0  # skip the once-a-second wait
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(text="zebra-42"), headers=AUTH
    ) as resp:
        assert resp.status == 200
    await proxy.wait_records(1)
    assert "zebra-42" not in proxy.log_path.read_text()


def test_a_secret_hidden_by_json_escapes_in_the_raw_body_is_still_found():
    raw = b'{"note": "\\u0073k-ant-api03-' + b"x" * 30 + b'"}'
    out, count = Scrubber().scrub(json.loads(raw), raw)
    assert "sk-ant" not in json.dumps(out)
    assert count == 1


def test_a_secret_key_name_in_the_raw_body_forces_the_walk():
    raw = b'{"headers": {"Authorization": "Basic Zm9vOmJhcg=="}}'
    out, count = Scrubber().scrub(json.loads(raw), raw)
    assert out["headers"]["Authorization"] == "[REDACTED:authorization]"
    assert count == 1


def test_the_proxys_own_keys_are_scrubbed_whatever_their_shape():
    literal = "custom-key-without-a-known-shape-123"
    raw = json.dumps({"m": f"leaked {literal}"}).encode()
    out, count = Scrubber(literals=[literal]).scrub(json.loads(raw), raw)
    assert out["m"] == "leaked [REDACTED:secret]" and count == 1


def test_a_long_prompt_full_of_anchor_words_is_scrubbed_in_milliseconds():
    secret = "sk-ant-api03-" + "x" * 40
    text = "Use the bearer of the cookie jar; never show a secret token. " * 1000 + secret
    start = time.perf_counter()
    out, count = Scrubber().scrub({"system": text})
    elapsed = time.perf_counter() - start
    assert secret not in out["system"] and count == 1
    assert elapsed < 0.5, f"{elapsed:.3f}s for {len(text)} characters"


async def test_a_rules_file_broken_by_an_edit_is_told_on_stderr_once(
    start_proxy, client, audit_dir, capfd
):
    rules = audit_dir / "scrub_rules.json"
    rules.write_text(json.dumps(["zebra-\\d+"]))
    proxy = await start_proxy()
    capfd.readouterr()
    rules.write_text('["zebra-\\\\d+", ')  # the operator saved half an edit
    proxy.state.scrubber._checked = 0  # skip the once-a-second wait
    for _ in range(2):
        async with client.post(
            f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(), headers=AUTH
        ) as resp:
            assert resp.status == 200
    await proxy.wait_records(2)
    err = capfd.readouterr().err
    assert err.count("not valid JSON") == 1, err
    assert err.startswith("cf-llm-proxy: scrub rules: ") and len(err.splitlines()) == 1
    async with client.get(f"{proxy.url}/health") as resp:
        assert "not valid JSON" in (await resp.json())["scrub"]["errors"][0]


@pytest.mark.parametrize("stream", [False, True])
async def test_set_cookie_values_never_reach_traffic_jsonl(start_proxy, client, stream):
    """A cookie pasted into a prompt, sent as a JSON field, or repeated in the
    model's answer (streamed or not) reaches the gateway but not the log."""
    proxy = await start_proxy()
    cookie = "Set-Cookie: sid=c00kieValue4242; Path=/; HttpOnly"
    body = anthropic_body(stream=stream, text=f"the server answered {cookie}")
    body["metadata"] = {"Set-Cookie": "sid=c00kieValue4243"}
    headers = {**AUTH, "x-fake-reply": f"I saw {cookie} there"}
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=body, headers=headers
    ) as resp:
        assert resp.status == 200
        answer = await resp.text()
    if stream:  # the text arrives in pieces: join the deltas
        events = [json.loads(line[6:]) for line in answer.splitlines() if line.startswith("data: ")]
        answer = "".join(e["delta"].get("text", "") for e in events if "delta" in e)
    assert "c00kieValue4242" in answer  # the gateway gets the real thing
    (rec,) = await proxy.wait_records(1)
    logged = proxy.log_path.read_text()
    assert "c00kieValue4242" not in logged and "c00kieValue4243" not in logged
    assert rec["scrubbed"] >= 3  # prompt, JSON field, answer


def test_long_strings_found_clean_are_remembered_but_secrets_never_are():
    """The clean-string memo (a conversation is resent on every call) must
    not let a secret through: only strings no rule touched are remembered."""
    scrubber = Scrubber()
    history = "An ordinary paragraph about the weather and the tides. " * 20
    leaky = history + SECRETS["openai-key"]
    for _ in range(2):  # the second time comes from the memo for `history`
        out, count = scrubber.scrub({"messages": [history, leaky]})
        assert out["messages"][0] == history
        assert SECRETS["openai-key"] not in json.dumps(out)
        assert count == 1
    assert history in scrubber._clean and leaky not in scrubber._clean


def test_a_rules_reload_forgets_what_the_old_rules_found_clean(tmp_path):
    rules = tmp_path / "scrub_rules.json"
    reloading = ReloadingScrubber(rules)
    text = "The zebra-42 crossed the road. " * 20
    assert reloading.get().scrub(text)[0] == text
    rules.write_text(json.dumps(["zebra-\\d+"]))
    reloading._checked = 0  # skip the once-a-second wait
    assert "zebra-42" not in reloading.get().scrub(text)[0]


# The anchor pre-checks: a string they call clean skips every built-in rule,
# so a miss there is a secret in the log.
ANCHORS = [anchor for rule in BUILTIN_RULES for anchor in rule.anchors]


def anchor_placements(anchor: str) -> list[str]:
    """The anchor alone, first, last, in upper case, among non-ASCII text, next
    to every other anchor and overlapping each whose tail is its head."""
    out = [
        anchor,
        anchor + " and then some ordinary words",
        "some ordinary words and then " + anchor,
        "some ordinary " + anchor.upper() + " words",
        "ünïcödé " + anchor.title() + " 日本語",
    ]
    for other in ANCHORS:
        out += [other + anchor, anchor + other, other.upper() + anchor]
        out += [
            other + anchor[k:]
            for k in range(1, min(len(anchor), len(other)))
            if other.endswith(anchor[:k])
        ]
    return out


def test_anchor_placements_include_overlapping_anchors():
    overlapping = [p for a in ANCHORS for p in anchor_placements(a) if len(p) < 2 * len(a) - 1]
    assert "awsk-" in anchor_placements("sk-") and "akiaiza" in anchor_placements("aiza")
    assert overlapping


@pytest.mark.parametrize("anchor", ANCHORS)
def test_an_anchor_anywhere_is_never_reported_clean(anchor):
    scrubber = Scrubber()
    for text in anchor_placements(anchor):
        assert scrubber._may_hold_builtin(text), text
        assert not scrubber._raw_is_clean(text.encode()), text
        body = json.dumps({"messages": [{"role": "user", "content": text}]}, ensure_ascii=False)
        assert not scrubber._raw_is_clean(body.encode()), body
    # A lone surrogate (which a JSON string may hold) does not hide it either.
    assert scrubber._may_hold_builtin("\ud800" + anchor + "\udfff")


@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_a_secret_key_name_in_any_case_forces_the_walk(key):
    for spelled in (key, key.upper(), key.title()):
        raw = json.dumps({"model": "m", "headers": {spelled: "plain-value"}}).encode()
        assert not Scrubber()._raw_is_clean(raw), raw
        out, count = Scrubber().scrub(json.loads(raw), raw)
        assert out["headers"][spelled] == f"[REDACTED:{key}]" and count == 1


@pytest.mark.parametrize(("kind", "secret"), SECRETS.items())
def test_a_secret_at_either_end_of_a_raw_body_is_scrubbed(kind, secret):
    for text in (secret, secret + " tail", "head " + secret):
        raw = json.dumps({"m": text}).encode()
        out, count = Scrubber().scrub(json.loads(raw), raw)
        assert secret not in json.dumps(out) and count == 1, (kind, text)
        out, count = Scrubber().scrub([text])
        assert secret not in out[0] and count == 1, (kind, text)


def test_a_body_without_any_anchor_is_reported_clean():
    near_misses = (
        "s k- bear er cook ie ke y ya29 -----beg in gh_p github-pat a.w.s xo-x ai za "
        "ak ia token auth passage secre t ünïcödé 日本語"
    )
    value = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "You are a helpful assistant; answer briefly.",
        "messages": [{"role": "user", "content": near_misses}],
        "metadata": {"user_id": "user_0123456789abcdef"},
    }
    raw = json.dumps(value, ensure_ascii=False).encode()
    scrubber = Scrubber()
    assert scrubber._raw_is_clean(raw)
    assert scrubber.scrub(value, raw) == (value, 0)
    assert scrubber.scrub(value, raw)[0] is value  # the walk was skipped
    assert not scrubber._may_hold_builtin(near_misses)
    assert not scrubber._may_hold_builtin("a lone surrogate \ud800 is no anchor")
    assert scrubber.scrub("a lone surrogate \ud800 is no anchor") == (
        "a lone surrogate \ud800 is no anchor",
        0,
    )


def test_a_character_that_lowercases_to_two_does_not_shift_the_anchors() -> None:
    """ "İ".lower() is two characters: found in the lowercased text, every
    anchor after it used to point one character off, and the key stayed."""
    key = "sk-proj-" + "Q" * 48
    for text in (f"İstanbul {key}", f"İİİ x {key} İ", f"{key} İ"):
        scrubbed, n = Scrubber().scrub(text)
        assert key not in scrubbed and n == 1, text


@pytest.mark.parametrize(
    "body",
    [
        {"headers": {"coo\u212aie": "session=abc123xyz789"}},  # Kelvin sign K
        {"api_\u212aey": "not-a-key-name-for-http"},
        {"note": "Coo\u212aie: session=abc123xyz789"},
        {"note": "Bearer\u00a0" + "t" * 20},  # a no-break space is still a space
    ],
)
def test_the_raw_precheck_and_the_walk_agree(body) -> None:
    """Skipping the walk on a body the raw pre-check calls clean must give
    the very result the walk would: otherwise a trick of Unicode case (a
    Kelvin sign for a K) hides a secret from the pre-check only."""
    raw = json.dumps(body, ensure_ascii=False).encode()
    scrubber = Scrubber()
    walked, _ = scrubber.scrub(body)
    checked, _ = scrubber.scrub(body, raw)
    assert checked == walked


@pytest.mark.parametrize(
    "secret",
    [
        "sk-ant-api03-" + "aB3" * 10,
        "sk-proj-" + "Ab1" * 12,
        "sk-" + "Xy9" * 16,
        "sk-or-v1-" + "a1" * 20,
        "AIza" + "B" * 35,
        "ghp_" + "c" * 36,
        "AKIA" + "X" * 16,
        "xoxb-" + "1" * 12,
        "ya29." + "d" * 24,
    ],
)
@pytest.mark.parametrize("glue", ["x", "7", "Z"])
def test_a_key_glued_to_a_letter_or_digit_is_still_redacted(secret, glue):
    out, count = Scrubber().scrub(f"here: {glue}{secret} end")
    assert secret not in out and count == 1
    assert out.startswith(f"here: {glue}[REDACTED:")


def test_words_that_hold_sk_dash_are_not_taken_for_glued_keys():
    text = "task-force-alpha-bravo-charlie-delta and risk-assessment-framework-version-two"
    assert Scrubber().scrub(text) == (text, 0)
