"""The age format as a child process, run by `cftui.snapshots` in both
directions (see `cftui.snapshots.agechild` for why a process):

    python -I -m cftui.age encrypt [--write-behind] age1...  < plain > file.age
    python -I -m cftui.age decrypt FILE                      < identity-line > plain

The identity arrives on stdin, never in argv or the environment. Exit status
2 with one line on stderr on failure ("age: ..." for format and key errors),
3 when the reader of stdout went away.
"""

from __future__ import annotations

import errno
import io
import sys

from cftui.age.errors import AgeError
from cftui.age.keys import parse_identity, parse_recipient
from cftui.age.stream import SEALED, decrypt, encrypt, open_payload


def _fail(message: str) -> int:
    sys.stderr.write(" ".join(message.split())[:300])
    return 2


def main(argv: list[str]) -> int:
    """`encrypt [--write-behind] RECIPIENT` (stdin to stdout) or `decrypt FILE`
    (identity on the first line of stdin, plaintext to stdout)."""
    try:
        if argv[:1] == ["encrypt"] and len(argv) in (2, 3):
            recipient = parse_recipient(argv[-1])
            after_write = None
            if "--write-behind" in argv[1:-1]:
                # Imported only here: the write-behind belongs to the snapshot
                # file, and the package's `__init__` is light, so the child
                # starts as fast as before.
                from cftui.age.writebehind import WriteBehind

                after_write = WriteBehind(1).written
            encrypt(io.FileIO(0, closefd=False), 1, recipient, after_write)
        elif argv[:1] == ["decrypt"] and len(argv) == 2:
            identity = parse_identity(sys.stdin.readline())
            sys.stdin.close()
            with io.BufferedReader(io.FileIO(argv[1]), SEALED) as src:  # open(), typed
                decrypt(src, 1, open_payload(src, identity))
        else:
            return _fail("usage: cftui.age encrypt [--write-behind] RECIPIENT | decrypt FILE")
    except AgeError as exc:
        return _fail(f"age: {exc}")
    except BrokenPipeError:
        return 3
    except OSError as exc:
        return _fail("disk full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc))
    except Exception as exc:  # still one line for the parent, never a traceback
        return _fail(f"age: {type(exc).__name__}: {exc}")
    return 0
