"""Run a function over newline-aligned byte ranges of one file, in worker processes.

Why processes: scanning a big log (decrypting the capture, filtering traffic)
is CPU-bound Python, and threads share one GIL, so the only way past one core
is a second process. Each task is `fn(path, start, end, *args)`: the worker
opens and reads its own range, so only the arguments and the results cross the
pipe. Results come back in file order (or reverse order, for newest-first),
a bounded window of tasks ahead of the consumer.

The pool is started with `forkserver` (never plain fork: the TUI has threads),
is created on first use, reused by later scans, and shut down at exit. Workers
ignore SIGINT (the parent decides what Ctrl-C means) and import only what the
main script, this module and `fn`'s module import: never Textual. A small
range, `workers=1` or a one-CPU machine runs `fn` here instead, over the same
ranges, so results are the same either way.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # imported on first use: ~20 ms that the TUI's start need not pay
    from concurrent.futures import ProcessPoolExecutor

CHUNK = 4 << 20  # a task: ~50 ms of Fernet on 2 KB lines, so cancelling is quick
MIN_PARALLEL = 16 << 20  # below this the pool's start and the pipe cost more than they save
_PROBE = 1 << 16

R = TypeVar("R")


def cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def split(
    path: str | os.PathLike[str], start: int = 0, end: int | None = None, chunk: int = CHUNK
) -> list[tuple[int, int]]:
    """Byte ranges covering [start, end) of about `chunk` bytes each.

    Every range but the last ends just after a newline, so a line is never
    cut in two; `start` must itself be the start of a line. `end` defaults to
    the file's size now.
    """
    chunk = max(1, chunk)
    with open(path, "rb") as f:
        if end is None:
            end = os.fstat(f.fileno()).st_size
        ranges: list[tuple[int, int]] = []
        s = start
        while end - s > chunk:
            pos = s + chunk - 1  # a newline here makes s + chunk a line start
            cut = -1
            f.seek(pos)
            while pos < end:
                buf = f.read(min(_PROBE, end - pos))
                if not buf:
                    break
                nl = buf.find(b"\n")
                if nl >= 0:
                    cut = pos + nl + 1
                    break
                pos += len(buf)
            if cut < 0 or cut >= end:
                break  # one long line up to `end`: it is the last range
            ranges.append((s, cut))
            s = cut
        if s < end:
            ranges.append((s, end))
        return ranges


# --- the pool -----------------------------------------------------------------
_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_size = 0


WORKER_NICE = 10


def _worker_init() -> None:
    """Ctrl-C is the caller's to handle; and a scan is background work for an
    interactive process, so its workers yield the CPU: the TUI's event loop
    must get a core at once when a key is pressed on a busy machine (at load
    5, the loop's worst stall during a filter was ~100 ms instead of
    200-500 ms, the filter no slower)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICE)


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with the real stderr.

    It is handed `sys.stderr.fileno()`, and under Textual `sys.stderr` is a
    print capture whose `fileno()` is -1: the pool's start would fail with
    "bad value(s) in fds_to_keep". Once running, later calls only check it.
    """
    from multiprocessing import resource_tracker

    if sys.stderr is sys.__stderr__ or sys.__stderr__ is None:
        return  # started when first needed, as usual
    with contextlib.redirect_stderr(sys.__stderr__):
        resource_tracker.ensure_running()


def _pool_for(fn: Callable[..., Any]) -> ProcessPoolExecutor:
    """The shared pool, started on first use with `fn`'s module preloaded."""
    global _pool, _pool_size
    with _lock:
        if _pool is not None and getattr(_pool, "_broken", False):
            _pool.shutdown(wait=False, cancel_futures=True)  # broken under a scan not iterated
            _pool = None
        if _pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            _start_resource_tracker()
            ctx = multiprocessing.get_context("forkserver")
            preload = ["__main__", __name__]
            if fn.__module__ not in preload:
                preload.append(fn.__module__)
            # Imported once in the fork server, shared by every worker it forks.
            ctx.set_forkserver_preload(preload)
            _pool_size = cpu_count()
            _pool = ProcessPoolExecutor(_pool_size, mp_context=ctx, initializer=_worker_init)
        return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    """Forget a broken pool so that the next scan starts a new one."""
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


def shutdown() -> None:
    """Stop the workers (at exit; later scans start a new pool)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown)


def _noop() -> int:
    return os.getpid()


def warm(fn: Callable[..., Any] = _noop) -> None:
    """Start the pool and all its workers now (e.g. in a background thread).

    `fn` is what the scans will run: its module is preloaded in the fork server.
    """
    pool = _pool_for(fn)
    for fut in [pool.submit(_noop) for _ in range(_pool_size)]:
        fut.result()


@dataclass(frozen=True)
class WorkerStats:
    pid: int
    rss: int  # bytes; counts pages shared with the fork server in full
    pss: int  # bytes; shared pages split between their sharers (0 if unknown)
    cpu: float  # seconds, user + system


def _proc_stats(pid: int) -> WorkerStats | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    tick = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    # fields[0] is the state (field 3 of proc(5)): utime is field 14, stime 15, rss 24.
    rss = int(fields[21]) * page
    return WorkerStats(pid, rss, pss, (int(fields[11]) + int(fields[12])) / tick)


def worker_stats() -> list[WorkerStats]:
    """Memory and CPU time of the pool's live workers (empty before the first scan; Linux)."""
    with _lock:
        pool = _pool
    if pool is None:
        return []
    procs = list(getattr(pool, "_processes", {}).values())
    return [s for p in procs if (s := _proc_stats(p.pid)) is not None]


# --- one scan -----------------------------------------------------------------
class Scan(Generic[R]):
    """An iterator of `(start, end, fn's result)` over a file's ranges, in order.

    Ranges of about `chunk` bytes cover [start, end) (`start` a line start;
    `end` the file's size when omitted), newest first with `reverse`. `fn`
    and `args` must be picklable (a module-level function). `workers=1`, a
    one-CPU machine or fewer than `min_parallel` bytes run `fn` here, lazily;
    otherwise the tasks go to the shared pool (one process per CPU), at most
    two per worker ahead of the consumer. `progress(fraction)` is called in
    the iterating thread after each result. `args` may be replaced (never mutated: tasks in flight still hold it)
    between results, to change what the tasks submitted from then on get.
    `fraction` is the share of bytes whose results have been yielded;
    `cancel()` (from any thread) stops it: nothing more is submitted, pending
    tasks are cancelled, and the iteration ends at the next result or at once
    if it is waiting. Running tasks finish in their worker and are dropped.
    """

    def __init__(
        self,
        fn: Callable[..., R],
        path: str | os.PathLike[str],
        *args: Any,
        start: int = 0,
        end: int | None = None,
        reverse: bool = False,
        chunk: int = CHUNK,
        workers: int | None = None,
        min_parallel: int = MIN_PARALLEL,
        progress: Callable[[float], object] | None = None,
    ) -> None:
        self.fn = fn
        self.path = os.fspath(path)
        self.args = args
        self.ranges = split(self.path, start, end, chunk)
        if reverse:
            self.ranges.reverse()
        self.total = sum(e - s for s, e in self.ranges)
        self.done = 0
        self.progress = progress
        self.parallel = workers != 1 and cpu_count() > 1 and self.total >= min_parallel
        self._cancelled = threading.Event()
        self._wake: Future[None] = Future()
        self._iter: Iterator[tuple[int, int, R]] | None = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def cancel(self) -> None:
        self._cancelled.set()
        with contextlib.suppress(InvalidStateError):  # already woken: a second cancel
            self._wake.set_result(None)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def __iter__(self) -> Iterator[tuple[int, int, R]]:
        if self._iter is None:
            self._iter = self._parallel() if self.parallel else self._here()
        return self._iter

    def __next__(self) -> tuple[int, int, R]:
        return next(iter(self))

    def close(self) -> None:
        """Stop early, from the iterating thread (cancels pending tasks)."""
        self.cancel()
        if self._iter is not None:
            self._iter.close()  # type: ignore[attr-defined]  # a generator's close

    def __enter__(self) -> Scan[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _advance(self, s: int, e: int) -> None:
        self.done += e - s
        if self.progress is not None:
            self.progress(self.fraction)

    def _here(self) -> Iterator[tuple[int, int, R]]:
        for s, e in self.ranges:
            if self.cancelled:
                return
            result = self.fn(self.path, s, e, *self.args)
            self._advance(s, e)
            yield s, e, result

    def _parallel(self) -> Iterator[tuple[int, int, R]]:
        pool = _pool_for(self.fn)
        window = 2 * _pool_size
        todo = iter(self.ranges)
        pending: deque[tuple[int, int, Future[R]]] = deque()
        try:
            while True:
                while not self.cancelled and len(pending) < window:
                    rng = next(todo, None)
                    if rng is None:
                        break
                    pending.append((*rng, pool.submit(self.fn, self.path, *rng, *self.args)))
                if not pending or self.cancelled:
                    return
                s, e, fut = pending[0]
                waiting: list[Future[Any]] = [fut, self._wake]
                wait(waiting, return_when=FIRST_COMPLETED)
                if self.cancelled:
                    return
                pending.popleft()
                result = fut.result()
                self._advance(s, e)
                yield s, e, result
        except Exception as exc:
            from concurrent.futures.process import BrokenProcessPool

            # A worker died (killed, out of memory): seen by `submit` or by a
            # result, whichever comes first. The next scan starts a new pool.
            if isinstance(exc, BrokenProcessPool):
                _discard(pool)
            raise
        finally:
            for _, _, fut in pending:
                fut.cancel()
