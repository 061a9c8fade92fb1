"""What cftui reads of a gateway's code/ before a build, played as the agent:
the Dockerfile parser that finds remote ADD sources however they are
spelled, and the context tar that follows no link and reads no fifo.
No engine needed: the real-engine side is tests/containment/test_build_isolation.py."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from cftui.errors import RuntimeOperationError
from cftui.runtime.images import context as build_context
from cftui.runtime.images import dockerfile


def _remote(text: str) -> list[tuple[int, str]]:
    instructions, escape = dockerfile.parse(text)
    return [(r.line, r.source) for r in dockerfile.remote_add_sources(instructions, escape)]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("FROM x\nADD git@github.com:acme/agent.git /src\n", 2),
        ("FROM x\nADD git://example.test/repo /src\n", 2),
        ("FROM x\nADD ssh://git@example.test/repo /src\n", 2),
        ("FROM x\nADD --keep-git-dir=true https://example.test/r.git /src\n", 2),
        ("FROM x\nADD --checksum sha256:00 https://example.test/f /f\n", 2),
        ("FROM x\nONBUILD ADD http://127.0.0.1:1/x /x\n", 2),
        ("FROM x\nonbuild add http://127.0.0.1:1/x /x\n", 2),
        ("FROM x\nADD h'ttp'://127.0.0.1:1/x /x\n", 2),
        ("FROM x\nADD http:\\/\\/127.0.0.1:1/x /x\n", 2),
        ("FROM x\nADD HTTP://127.0.0.1:1/x /x\n", 2),
        ("FROM x\r\nADD http://127.0.0.1:1/x /x\r\n", 2),
        ("\ufeffFROM x\nADD http://127.0.0.1:1/x /x\n", 2),
        ("#  Escape = `\nFROM x\nRUN echo \\\nADD http://127.0.0.1:1/x /x\n", 4),
        ("# escape=`\nFROM x\nRUN echo `\n  hi\nADD `\n  http://127.0.0.1:1/x /x\n", 5),
        ("FROM x\nADD \\\n\n  http://127.0.0.1:1/x /x\n", 2),
        ("FROM x\nADD ${SRC:-http://127.0.0.1:1/x} /x\n", 2),
        ("FROM x\nADD $SRC /x\n", 2),
        ('FROM x\nADD ["$SRC", "/x"]\n', 2),
    ],
)
def test_parser_finds_every_spelling_of_a_remote_add(text, line):
    found = _remote(text)
    assert found and found[0][0] == line


@pytest.mark.parametrize(
    "text",
    [
        "FROM x\nADD app.tar.gz /app/\nCOPY --chown=1000:1000 . /code\n",
        "FROM x\nADD --chown=${UID} app.tar.gz $HOME/\n",
        "FROM x\nRUN echo \\\n  ADD http://127.0.0.1:1/x /x\n",
        "# escape=`\nFROM x\nRUN echo `\nADD http://127.0.0.1:1/x /x\n",
        "FROM x\n# ADD http://127.0.0.1:1/x /x\n",
    ],
)
def test_parser_leaves_local_sources_and_non_instructions_alone(text):
    assert _remote(text) == []


def test_parser_reads_a_directive_only_at_the_top():
    # After an instruction, `# escape=` is a comment: `\\` still continues.
    instructions, escape = dockerfile.parse("FROM x\n# escape=`\nRUN a \\\n b\n")
    assert escape == "\\"
    assert [i.cmd for i in instructions] == ["from", "run"]


def test_parser_refuses_an_invalid_escape_and_a_repeated_directive():
    with pytest.raises(dockerfile.DockerfileError, match="invalid escape"):
        dockerfile.parse("# escape=x\nFROM x\n")
    with pytest.raises(dockerfile.DockerfileError, match="only one escape"):
        dockerfile.parse("# escape=`\n# escape=`\nFROM x\n")


def test_onbuild_triggers_of_a_base_image_are_checked_too():
    found = dockerfile.onbuild_remote_sources(["RUN true", "ADD http://127.0.0.1:1/x /x"])
    assert [r.source for r in found] == ["http://127.0.0.1:1/x"]


def test_from_images_skips_stages_and_reads_the_base_arg():
    instructions, _ = dockerfile.parse(
        "ARG BASE_IMAGE=a:1\nFROM ${BASE_IMAGE} AS build\nFROM build\n"
        "FROM --platform=linux/amd64 c:2 as other\nFROM scratch\n"
    )
    assert dockerfile.base_arg_default(instructions) == (True, "a:1")
    assert dockerfile.from_images(instructions, "a:1") == ["a:1", "c:2"]


# --- the context tar ----------------------------------------------------------


def _members(code: Path) -> dict[str, tarfile.TarInfo]:
    raw = build_context.read_dockerfile(code)
    out = io.BytesIO()
    build_context.context_digest(code, raw, "t", out=out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.fixture
def code(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    (code / "workspace").mkdir(parents=True)
    (code / "Dockerfile").write_text("FROM x\n")
    (code / "workspace" / "SOUL.md").write_text("soul\n")
    return code


def test_context_keeps_links_as_links_and_leaves_fifos_devices_and_git_out(code, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("root only\n")
    (code / "workspace" / "leak").symlink_to(secret)
    (code / "loop").symlink_to(code)
    os.mkfifo(code / "workspace" / "pipe")
    (code / ".git").mkdir()
    (code / ".git" / "config").write_text("[remote]\nurl = https://user:token@example.test/\n")
    tool = code / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    tool.chmod(0o4755)
    members = _members(code)
    assert members["workspace/leak"].issym() and members["workspace/leak"].linkname == str(secret)
    assert members["loop"].issym()
    assert "workspace/pipe" not in members
    assert not [name for name in members if name.startswith(".git")]
    assert members["tool"].mode == 0o755  # no setuid bit into the image
    assert members["workspace/SOUL.md"].uid == 0


def test_context_honours_dockerignore_but_always_sends_the_dockerfile(code):
    (code / ".dockerignore").write_text("# caches\nworkspace\nDockerfile\n!workspace/keep.md\n")
    (code / "workspace" / "keep.md").write_text("keep\n")
    members = _members(code)
    assert "Dockerfile" in members
    assert "workspace/SOUL.md" not in members
    assert "workspace/keep.md" in members


def test_context_sends_the_dockerfile_bytes_that_were_checked(code):
    checked = build_context.read_dockerfile(code)
    (code / "Dockerfile").write_text("FROM x\nADD http://127.0.0.1:1/x /x\n")  # swapped later
    out = io.BytesIO()
    build_context.context_digest(code, checked, "t", out=out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        member = tar.extractfile("Dockerfile")
        assert member is not None and member.read() == checked


def test_context_hash_follows_content_mode_and_link_targets(code):
    raw = build_context.read_dockerfile(code)
    first = build_context.context_digest(code, raw, "t")
    assert build_context.context_digest(code, raw, "t") == first
    (code / "workspace" / "SOUL.md").chmod(0o755)
    second = build_context.context_digest(code, raw, "t")
    (code / "workspace" / "link").symlink_to("SOUL.md")
    third = build_context.context_digest(code, raw, "t")
    (code / "workspace" / "link").unlink()
    (code / "workspace" / "link").symlink_to("other")
    assert len({first, second, third, build_context.context_digest(code, raw, "t")}) == 4


def test_a_dockerfile_or_dockerignore_that_is_a_link_is_refused(code, tmp_path):
    (code / ".dockerignore").symlink_to(tmp_path / "anything")
    with pytest.raises(RuntimeOperationError, match=r"\.dockerignore must be a regular file"):
        _members(code)
    (code / ".dockerignore").unlink()
    (code / "Dockerfile").unlink()
    (code / "Dockerfile").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RuntimeOperationError, match="must be a regular file inside"):
        build_context.read_dockerfile(code)


def test_a_code_dir_that_is_a_link_is_refused(code, tmp_path):
    link = tmp_path / "code-link"
    link.symlink_to(code)
    with pytest.raises(RuntimeOperationError, match="not a link"):
        build_context.read_dockerfile(link)


def test_an_oversized_context_is_refused_in_one_line(code, monkeypatch):
    monkeypatch.setenv("CFTUI_MAX_BUILD_CONTEXT_MB", "1")
    (code / "workspace" / "big").write_bytes(b"\0" * (2 << 20))
    with pytest.raises(RuntimeOperationError, match="over 1 MiB") as exc:
        _members(code)
    assert "\n" not in str(exc.value)


def test_image_refs_expand_global_args_and_skip_stages():
    instructions, _ = dockerfile.parse(
        "ARG REG=r.test\nARG IMG=${REG}/app:1\nARG UNSET\nFROM ${IMG} AS Build\n"
        "FROM ${UNSET:-fallback:2}\nCOPY --from=build /a /a\nCOPY --from=0 /a /a\n"
        "COPY --from=tools:3 /t /t\nONBUILD COPY --from=other:4 /o /o\nFROM $UNSET\n"
    )
    refs = [(r.line, r.how, r.ref, r.unresolved) for r in dockerfile.image_refs(instructions, {})]
    assert refs == [
        (4, "FROM", "r.test/app:1", False),
        (5, "FROM", "fallback:2", False),
        (8, "COPY --from", "tools:3", False),
        (9, "COPY --from", "other:4", False),
        (10, "FROM", "$UNSET", True),
    ]
    given = dockerfile.image_refs(instructions, {"UNSET": "given:5"})
    assert given[-1].ref == "given:5" and not given[-1].unresolved


def test_a_context_nested_deeper_than_the_bound_is_refused_in_one_line(code):
    """The agent nests code/ 200 directories deep: the build is refused with
    one line, not a RecursionError, and no subtree is silently left out."""
    deep = code
    for _ in range(200):
        deep = deep / "d"
    deep.mkdir(parents=True)
    raw = build_context.read_dockerfile(code)
    with pytest.raises(RuntimeOperationError, match="nested more than 128 directories deep"):
        build_context.context_digest(code, raw, "t")
