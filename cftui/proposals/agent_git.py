"""The commits the agent made in its proposals tree's own git, read without
running git and without trusting anything in that `.git`.

No git program runs there (a hook, `core.fsmonitor` or a filter would be
the agent's code on the host), and no config, alternates, `commondir`,
gitfile or shallow list is read. HEAD and refs are read as small files with
no link followed; objects are read with dulwich from files opened the same
way. Parsing hostile objects (a zlib bomb, a delta chain) happens in a child
process with a memory, CPU and wall-clock bound, so at worst the list is
missing, with a note saying why.
"""

from __future__ import annotations

import json
import os
import re
import resource
import stat
import subprocess
import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path

from cftui.proposals.model import AgentCommit
from cftui.securefs import READ_FLAGS, UnsafeFile, agent_dir, list_agent_dir, read_agent_file

MAX_COMMITS = 50
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_REF_RE = re.compile(r"^refs/heads/[A-Za-z0-9._/-]{1,200}$")
_SMALL = 1 << 16
_PACKED_REFS_MAX = 4 << 20
_OBJECT_MAX = 1 << 20  # a commit is a few hundred bytes
_PACK_MAX = 4 << 30
_CHILD_MEMORY = 512 << 20
_CHILD_CPU_S = 10
_CHILD_WALL_S = 20


def read_head(root: Path) -> str | None:
    """The commit id the proposals' HEAD names, None when there is none to
    read (no `.git` directory, an unborn branch, anything malformed)."""
    try:
        raw = read_agent_file(root, ".git/HEAD", _SMALL)
    except (UnsafeFile, OSError, ValueError):
        return None
    if raw is None:
        return None
    text = raw.decode("ascii", "replace").strip()
    if _SHA_RE.fullmatch(text):
        return text
    if not text.startswith("ref: "):
        return None
    ref = text[5:].strip()
    if not _REF_RE.fullmatch(ref) or ".." in ref or "//" in ref:
        return None
    try:
        loose = read_agent_file(root, f".git/{ref}", _SMALL)
        if loose is not None:
            sha = loose.decode("ascii", "replace").strip()
            return sha if _SHA_RE.fullmatch(sha) else None
        packed = read_agent_file(root, ".git/packed-refs", _PACKED_REFS_MAX)
    except (UnsafeFile, OSError, ValueError):
        return None
    for line in (packed or b"").decode("utf-8", "replace").splitlines():
        sha, _, name = line.partition(" ")
        if name == ref and _SHA_RE.fullmatch(sha):
            return sha
    return None


def commits(root: Path, stop: set[str]) -> tuple[list[AgentCommit], str | None]:
    """The agent's commits, newest first, from its HEAD back to any commit in
    `stop` (the approved commit it was seeded from); and a note when they
    could not all be read."""
    head = read_head(root)
    if head is None or head in stop:
        return [], None
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "cftui.proposals.agent_git", str(root), head, *sorted(stop)],
            capture_output=True,
            timeout=_CHILD_WALL_S,
            check=False,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": _import_path()},
        )
    except subprocess.TimeoutExpired:
        return [], "the agent's git history took too long to read: not shown"
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        return [], "the agent's git history could not be read (malformed or too large)"
    found = [AgentCommit(**c) for c in result.get("commits", [])]
    return found, result.get("note")


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_CHILD_MEMORY, _CHILD_MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (_CHILD_CPU_S, _CHILD_CPU_S))


def _import_path() -> str:
    here = Path(__file__).resolve().parents[2]
    return os.pathsep.join([str(here), *[p for p in sys.path if p]])


# --- the child -------------------------------------------------------------


class _Objects:
    """Loose objects and packs of a hostile `.git/objects`, opened safely."""

    def __init__(self, root: Path) -> None:
        from dulwich.object_format import SHA1

        self.root = root
        self.fmt = SHA1
        self.packs = []
        for name in list_agent_dir(root, ".git/objects/pack"):
            if not name.endswith(".idx"):
                continue
            base = name[: -len(".idx")]
            idx = self._open("objects/pack", name)
            data = self._open("objects/pack", base + ".pack")
            if idx is None or data is None:
                continue
            from dulwich.pack import Pack, PackData, load_pack_index_file

            index = load_pack_index_file(name, idx, self.fmt)
            pack_data = PackData(
                base + ".pack", self.fmt, file=data, size=os.fstat(data.fileno()).st_size
            )
            self.packs.append(Pack.from_objects(pack_data, index))

    def _open(self, reldir: str, name: str):
        with agent_dir(self.root, f".git/{reldir}") as dfd:
            if dfd is None:
                return None
            try:
                fd = os.open(name, READ_FLAGS, dir_fd=dfd)
            except OSError:
                return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1 or st.st_size > _PACK_MAX:
            os.close(fd)
            return None
        return os.fdopen(fd, "rb")

    def commit(self, sha: str):
        from dulwich.objects import Commit, ShaFile

        raw = read_agent_file(self.root, f".git/objects/{sha[:2]}/{sha[2:]}", _OBJECT_MAX)
        if raw is not None:
            d = zlib.decompressobj()
            body = d.decompress(raw, _OBJECT_MAX + 64)
            header, _, content = body.partition(b"\0")
            if not header.startswith(b"commit "):
                return None
            obj = ShaFile.from_raw_string(1, content, object_format=self.fmt)
            return obj if isinstance(obj, Commit) else None
        for pack in self.packs:
            try:
                type_num, content = pack.get_raw(sha.encode())
            except KeyError:
                continue
            if type_num != 1:
                return None
            return ShaFile.from_raw_string(1, content, object_format=self.fmt)
        return None


def _walk(root: Path, head: str, stop: set[str]) -> dict:
    objects = _Objects(root)
    out, note = [], None
    queue, seen = [head], set()
    while queue:
        sha = queue.pop(0)
        if sha in seen or sha in stop:
            continue
        seen.add(sha)
        if len(out) >= MAX_COMMITS:
            note = f"more than {MAX_COMMITS} commits: the newest {MAX_COMMITS} are shown"
            break
        commit = objects.commit(sha)
        if commit is None:
            note = note or f"commit {sha[:12]} is missing or not a commit: history shown up to it"
            continue
        when = datetime.fromtimestamp(commit.author_time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = commit.message.decode("utf-8", "replace")
        out.append(
            {
                "id": sha,
                "author": commit.author.decode("utf-8", "replace")[:200],
                "date": when,
                "summary": (message.strip().splitlines() or [""])[0][:200],
            }
        )
        queue.extend(p.decode() for p in commit.parents)
    return {"commits": out, "note": note}


def main(argv: list[str]) -> int:
    _limits()  # before any hostile byte is parsed
    root, head, *stop = argv
    try:
        result = _walk(Path(root), head, set(stop))
    except Exception as exc:  # hostile bytes: say so, never crash the scan
        result = {
            "commits": [],
            "note": f"the agent's git history is unreadable ({type(exc).__name__})",
        }
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
