"""cftui's record of what each directory of the proposals tree held, so a
scan of 50,000 files hashes only what changed and judges again only the
directories where something did (git's index and untracked cache, kept by us).

It lives beside the tree, where the gateway cannot write: nothing the agent
controls vouches for content. A directory's record holds its listing as the
scan saw it (each name, in the order the filesystem lists them, with mode,
size, mtime, ctime, inode and link count), the blob id of each file, the
approved commit it was judged against and what it found there. While the
listing is byte for byte the same and the approved commit has not moved, the
directory is as it was, and so is its verdict. The agent can set mtime but
not ctime, which moves on every write, rename or link. As in git, a file
whose ctime is close to when it was recorded is "racy" (a write in the same
clock tick would not show): such a directory's verdict is not trusted, and
such a file is hashed again.

The records (`.proposals-index`: a digest and a verdict per directory) are
read by every scan; the listings themselves with the blob id of each file
(the details, in SHARDS files under `.proposals-index.d/`) only where a
directory changed, and a change rewrites only its shard. Names are stored as
their filesystem bytes (read as latin-1, so a name that is not UTF-8
survives JSON).
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import os
import shutil
import stat
import time
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from cftui.securefs import atomic_write_private, make_private_dirs

VERSION = 2
RACY_NS = 100_000_000  # well above any filesystem's timestamp granularity
_U64 = (1 << 64) - 1
NO_SHA = "-" * 40  # a directory's place in a record's blob ids
FIELDS = 6  # mode, size, mtime, ctime, inode, links


def enc(text: str) -> str:
    """A filesystem name as JSON can hold it (its bytes, as latin-1)."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def dec(text: str) -> str:
    return text.encode("latin-1").decode("utf-8", "surrogateescape")


def fields(st: os.stat_result) -> tuple[int, int, int, int, int, int]:
    """What a record keeps of an entry's lstat (a directory: its type only,
    its own record covers what it holds)."""
    if stat.S_ISDIR(st.st_mode):
        return (stat.S_IFDIR, 0, 0, 0, 0, 0)
    return (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_nlink)


def dir_key(names: list[str], values: list[int]) -> str:
    """One string for a listing: its names and their `fields`, in order."""
    try:
        packed = array("q", values).tobytes()
    except OverflowError:  # an inode or mtime past 2**63: the same bytes, unsigned
        packed = array("Q", [v & _U64 for v in values]).tobytes()
    return enc("\0".join(names)) + "\0" + binascii.b2a_base64(packed, newline=False).decode()


def unpack(key: str) -> dict[str, tuple[int, ...]]:
    """A record's listing as name -> fields (for the files of a directory
    where something changed: those that did not need no hashing)."""
    raw_names, _, b64 = key.rpartition("\0")
    names = dec(raw_names).split("\0") if raw_names else []
    values = array("q", binascii.a2b_base64(b64))
    return {n: tuple(values[i * FIELDS : (i + 1) * FIELDS]) for i, n in enumerate(names)}


@dataclass(frozen=True, slots=True)
class Found:
    """One verdict of a directory's record: a file that differs from the
    approved tree (`name` is the entry's name, or for `removed` the path)."""

    name: str
    status: str  # added, changed, removed
    sha: str | None  # the proposed blob (None when removed)
    old_sha: str | None  # the approved blob (None when added)
    executable: bool
    old_mode: int = 0  # its git mode
    # (old size, lines added, lines removed, binary) once counted: both
    # sides are fixed by their blob ids, so the counts are too.
    counts: tuple[int | None, int | None, int | None, bool] | None = None


@dataclass(slots=True)
class Record:
    """What a scan found in one directory: the verdict a later scan replays
    while the listing is the same (`digest` of its key)."""

    digest: str  # of the directory's dir_key
    approved: str  # the approved commit its verdict is against ("": none to replay)
    found: list[Found]
    newest_ctime: int  # of its entries
    taken: int  # when it was recorded: the verdict is racy until newest + RACY_NS

    @property
    def trusted(self) -> bool:
        """A verdict whose listing was not racy when it was taken."""
        return self.newest_ctime + RACY_NS <= self.taken

    def to_json(self) -> list:
        found = [
            [enc(f.name), f.status, f.sha, f.old_sha, f.executable, f.old_mode, f.counts]
            for f in self.found
        ]
        return [self.digest, self.approved, found, self.newest_ctime, self.taken]

    @staticmethod
    def from_json(raw: list) -> Record:
        digest, approved, found, newest, taken = raw
        return Record(
            digest,
            approved,
            [
                Found(dec(n), s, sha, old, bool(x), int(m), _counts(c))
                for n, s, sha, old, x, m, c in found
            ],
            int(newest),
            int(taken),
        )


def _counts(raw: list | None) -> tuple[int | None, int | None, int | None, bool] | None:
    if raw is None:
        return None
    old_size, added, removed, binary = raw
    return old_size, added, removed, bool(binary)


@dataclass(slots=True)
class Detail:
    """A directory's listing itself with the blob id of each file: what a
    scan of a directory where something changed needs so that only the
    files that changed are hashed. Kept apart (most scans need none)."""

    key: str  # dir_key
    shas: str  # a blob id (40 hex) per name of the key, NO_SHA for none
    taken: int

    def known(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """name -> (its fields, its blob id), for the files that were not
        racy when they were recorded."""
        out = {}
        for i, (name, values) in enumerate(unpack(self.key).items()):
            sha = self.shas[i * 40 : (i + 1) * 40]
            if sha != NO_SHA and values[3] + RACY_NS <= self.taken:
                out[name] = (values, sha)
        return out


def digest(key: str) -> str:
    """A key's digest (cryptographic: the agent chooses much of what is in it)."""
    return hashlib.blake2b(key.encode("latin-1"), digest_size=20).hexdigest()


SHARDS = 64  # the details are kept in this many files: a change rewrites one


@dataclass
class StatCache:
    """Directory (its path with a trailing slash, "" for the top) -> its
    record; `base` is the approved commit the tree was seeded from (where the
    agent's own commits start). The details are read, a shard at a time, on
    first use; `fresh` (a new seed) ignores those on disk and replaces them."""

    base: str | None = None
    dirs: dict[str, list] = field(default_factory=dict)  # enc(prefix) -> Record.to_json
    details_dir: Path | None = None
    fresh: bool = False
    dirty: bool = False
    _shards: dict[int, dict[str, list]] = field(default_factory=dict)
    _dirty_shards: set[int] = field(default_factory=set)

    def lookup(self, prefix: str) -> Record | None:
        raw = self.dirs.get(enc(prefix))
        if raw is None:
            return None
        try:
            return Record.from_json(raw)
        except (ValueError, TypeError):
            return None

    def _shard(self, name: str) -> tuple[int, dict[str, list]]:
        n = zlib.crc32(name.encode("latin-1")) % SHARDS
        shard = self._shards.get(n)
        if shard is None:
            shard = {} if self.fresh else _load_shard(self.details_dir, n)
            self._shards[n] = shard
        return n, shard

    def detail(self, prefix: str) -> Detail | None:
        raw = self._shard(enc(prefix))[1].get(enc(prefix))
        if raw is None:
            return None
        try:
            key, shas, taken = raw
            return Detail(key, shas, int(taken))
        except (ValueError, TypeError):
            return None

    def put(self, prefix: str, record: Record, detail: Detail) -> None:
        """Keep a directory's record and its detail."""
        name = enc(prefix)
        self.dirs[name] = record.to_json()
        n, shard = self._shard(name)
        shard[name] = [detail.key, detail.shas, detail.taken]
        self._dirty_shards.add(n)
        self.dirty = True

    def forget(self, names: list[str]) -> None:
        """Drop the records of directories (by their stored names) that are gone."""
        for name in names:
            self.dirs.pop(name, None)
            n, shard = self._shard(name)
            if shard.pop(name, None) is not None:
                self._dirty_shards.add(n)
            self.dirty = True

    def save(self, path: Path) -> None:
        """Write it back (each file 0600, atomically): the details first, so a
        record is never newer than what backs it."""
        shards = range(SHARDS) if self.fresh else sorted(self._dirty_shards)
        if shards:
            top = details_dir_of(path)
            make_private_dirs(top)
            for n in shards:
                body = orjson.dumps({"v": VERSION, "dirs": self._shards.get(n, {})})
                atomic_write_private(top / f"{n:02d}.json", body)
        self._dirty_shards.clear()
        self.fresh = False
        atomic_write_private(
            path, orjson.dumps({"v": VERSION, "base": self.base, "dirs": self.dirs})
        )
        self.dirty = False


def details_dir_of(path: Path) -> Path:
    return path.with_name(path.name + ".d")


def load(path: Path) -> StatCache:
    """The cache, or an empty one when absent, unreadable or of an older
    version (it is only a cache: a scan without it hashes everything)."""
    details = details_dir_of(path)
    try:
        with open(path, "rb") as f:
            raw = orjson.loads(f.read())
        if raw.get("v") != VERSION:
            base = raw.get("base")
            return StatCache(base if isinstance(base, str) else None, details_dir=details)
        return StatCache(raw.get("base"), dict(raw.get("dirs", {})), details_dir=details)
    except (OSError, ValueError, TypeError, AttributeError):
        return StatCache(details_dir=details)


def _load_shard(top: Path | None, n: int) -> dict[str, list]:
    if top is None:
        return {}
    try:
        with open(top / f"{n:02d}.json", "rb") as f:
            raw = orjson.loads(f.read())
        if raw.get("v") != VERSION:
            return {}
        return dict(raw.get("dirs", {}))
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def save(path: Path, cache: StatCache) -> None:
    """Write the cache back (StatCache.save)."""
    cache.save(path)


def drop(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    shutil.rmtree(details_dir_of(path), ignore_errors=True)


def now_ns() -> int:
    return time.time_ns()
