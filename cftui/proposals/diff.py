"""The unified diff of the proposals against the approved tree (`cftui
diff`), for one path, a directory of them, or all: the proposals tree's
files and the save directory's dependency files (`save_deps`). Binary
files and refused entries get one line each saying so; nothing refused is
read."""

from __future__ import annotations

import difflib

from cftui.errors import UsageError
from cftui.fleet import FleetHome
from cftui.proposal_tree import approved
from cftui.proposals import save_deps
from cftui.proposals.content import is_binary
from cftui.proposals.model import Change
from cftui.proposals.scan import scan_with_contents

# A diff longer than this many lines a file is cut, saying so.
MAX_DIFF_LINES = 20_000


def diff(home: FleetHome, bot: str, path: str | None = None) -> str:
    found, contents = scan_with_contents(home, bot, with_commits=False)
    code = home.code_dir(bot)
    # The save directory's dependency files, read as a promotion reads them.
    saved = save_deps.changes(code, found)
    contents = {**contents, **saved.contents}
    want = path.strip("/") if path else None
    changes = [c for c in found.changes + saved.changes if _under(c.path, want)]
    tree_refused = {r.path for r in found.refused}
    both = found.refused + [r for r in saved.refused if r.path not in tree_refused]
    refused = [r for r in both if _under(r.path, want)]
    if want and not changes and not refused:
        raise UsageError(f"{path!r} is not a proposal of {bot} (see `cftui proposals {bot}`)")
    tree = approved.tree(code, found.approved)
    olds = dict(approved.blobs(code, {tree[c.path].sha for c in changes if c.path in tree}))
    out: list[str] = []
    for c in changes:
        old = olds.get(tree[c.path].sha) if c.path in tree else None
        out += _one(c, old, contents.get(c.path))
    for r in refused:
        out.append(f"# refused {r.path}: {r.reason}\n")
    return "".join(out)


def _under(path: str, want: str | None) -> bool:
    return want is None or path == want or path.startswith(want + "/")


def _one(c: Change, old: bytes | None, new: bytes | None) -> list[str]:
    a = f"a/{c.path}" if old is not None else "/dev/null"
    b = f"b/{c.path}" if new is not None else "/dev/null"
    head = [f"diff --git a/{c.path} b/{c.path}\n"]
    if c.status == "added":
        head.append(f"new file mode {'100755' if c.executable else '100644'}\n")
    elif c.status == "removed":
        head.append("deleted file\n")
    if old is not None and old == new:
        return [*head, f"new mode {'100755' if c.executable else '100644'}\n"]
    if (old and is_binary(old)) or (new and is_binary(new)):
        return [*head, f"Binary files {a} and {b} differ\n"]
    lines = list(
        difflib.unified_diff(
            (old or b"").decode("utf-8", "replace").splitlines(keepends=True),
            (new or b"").decode("utf-8", "replace").splitlines(keepends=True),
            a,
            b,
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"# … {len(lines) - MAX_DIFF_LINES} more lines\n"]
    fixed = [ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines]
    return head + fixed
