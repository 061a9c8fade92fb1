"""Run one fuzz target under atheris: `python fuzz/run.py TARGET [libFuzzer flags]`.

The corpus and any crash go under $CFTUI_FUZZ_DIR (default /tmp/cftui-fuzz),
never into the repository: a crash found is replayed with
`python fuzz/run.py TARGET CRASH_FILE` and kept as a test in tests/fuzz.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).parent))
from targets import TARGETS, seeds


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: run.py {{{','.join(TARGETS)}}} [libFuzzer flags or crash files]")
    name = sys.argv.pop(1)
    base = Path(os.environ.get("CFTUI_FUZZ_DIR", "/tmp/cftui-fuzz"))
    corpus = base / "corpus" / name
    crashes = base / "crashes" / name
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds(name)):
        (corpus / f"seed-{i}").write_bytes(seed)
    replay = [a for a in sys.argv[1:] if not a.startswith("-")]
    argv = [sys.argv[0], *sys.argv[1:], f"-artifact_prefix={crashes}/"]
    if not replay:
        argv.append(str(corpus))
    atheris.Setup(argv, TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
