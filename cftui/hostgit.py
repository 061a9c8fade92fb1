"""Every `git` that cftui runs on the host, run so that nothing the agent
wrote can make it execute anything.

A bot's `code/` is a work tree the gateway can write, and git honours a lot
of what it finds in a repository: `core.fsmonitor` and hooks run programs,
config includes pull in more config, and a `.git` the agent planted (or a
renamed original) would bring all of it. So each call here:

- reads no system or global config (`GIT_CONFIG_NOSYSTEM`,
  `GIT_CONFIG_GLOBAL=/dev/null`, `GIT_ATTR_NOSYSTEM`) and drops the
  caller's `GIT_*` environment (`GIT_DIR`, `GIT_CONFIG_PARAMETERS`, ...),
  keeping only its ssh settings;
- overrides what runs programs: `core.fsmonitor=` (off), `core.hooksPath=/dev/null`
  (no hooks), `protocol.ext.allow=never`, and `protocol.file.allow=user`
  (local paths for what the operator asked for, never for a submodule, which
  is what the file protocol is dangerous for);
- names the repository explicitly (`--git-dir`, `--work-tree`), so git never
  discovers a `.git` further up;
- runs only in a repository whose `.git` is a real directory owned by the
  operator (or root), never one owned by the gateway's user: the Docker
  runtime also mounts `.git` read-only over `/code/.git`, so the gateway
  can neither write it nor rename it and plant its own.

git's own advice to mark a repository `safe.directory` is never relayed: for
a tree the agent can write that advice is the attack.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from cftui.errors import CftuiError

SAFE_OPTIONS = (
    "-c",
    "core.fsmonitor=",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "protocol.file.allow=user",
    "-c",
    "protocol.ext.allow=never",
)
# The caller's settings that still apply: how to reach an ssh remote.
_KEPT_GIT_ENV = ("GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT")


class GitError(CftuiError):
    """A host-side git call failed, or was refused before it ran."""


def git_env() -> dict[str, str]:
    """The environment of every host git: no config but the repository's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in _KEPT_GIT_ENV}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_ATTR_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
    )
    return env


def trusted_owners() -> set[int]:
    """Who may own a `.git` cftui runs git in: root and the operator. When
    cftui runs as root the gateway runs as its own uid, which is not here."""
    return {0, os.geteuid()}


def verify_gitdir(repo: Path) -> Path:
    """`repo/.git` if it is a real directory owned by the operator (or root);
    GitError naming what is wrong otherwise. Never follows a link."""
    gitdir = repo / ".git"
    try:
        st = os.lstat(gitdir)
    except FileNotFoundError:
        raise GitError(f"{repo} is not a git checkout ({gitdir} does not exist)") from None
    except OSError as exc:
        raise GitError(f"cannot read {gitdir}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a directory"
        raise GitError(_not_trusted(gitdir, what))
    if st.st_uid not in trusted_owners():
        raise GitError(_not_trusted(gitdir, f"owned by uid {st.st_uid}, not by you"))
    return gitdir


def _not_trusted(gitdir: Path, what: str) -> str:
    return (
        f"refusing to run git in {gitdir.parent}: {gitdir} is {what} "
        "(the gateway may have replaced it); cftui runs no git there and will not "
        f"mark it safe: move {gitdir.name} aside and clone the bot's code again"
    )


def git(repo: Path | None, *args: str, cwd: Path | None = None, timeout: float = 300) -> str:
    """Run git on `repo` (checked by `verify_gitdir`), or outside any
    repository when `repo` is None (`clone`, `init`); its stdout. GitError
    with git's last line on failure."""
    return _run(repo, args, cwd=cwd, timeout=timeout).decode("utf-8", "replace").rstrip()


def git_bytes(repo: Path, *args: str, input: bytes | None = None, timeout: float = 300) -> bytes:
    """`git` for a command that reads stdin or writes bytes (`cat-file
    --batch`): the same safeguards, its raw stdout."""
    return _run(repo, args, cwd=None, timeout=timeout, input=input)


def _run(
    repo: Path | None,
    args: tuple[str, ...],
    *,
    cwd: Path | None,
    timeout: float,
    input: bytes | None = None,
) -> bytes:
    argv = ["git"]
    if repo is not None:
        gitdir = verify_gitdir(repo)
        argv += [f"--git-dir={gitdir}", f"--work-tree={repo}"]
        cwd = cwd or repo
    argv += [*SAFE_OPTIONS, *args]
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            env=git_env(),
            timeout=timeout,
            check=False,
            **({"input": input} if input is not None else {"stdin": subprocess.DEVNULL}),
        )
    except FileNotFoundError:
        raise GitError("git is not installed: install it (apt-get install git)") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git {args[0]} failed: {exc}") from None
    if proc.returncode != 0:
        text = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()
        if "safe.directory" in text or "dubious ownership" in text:
            where = repo or cwd
            raise GitError(
                f"git {args[0]} refused {where}: it is owned by another user; cftui "
                "will not mark a tree the gateway can write as safe"
            )
        lines = text.splitlines()
        raise GitError(f"git {args[0]} failed: {lines[-1] if lines else proc.returncode}")
    return proc.stdout
