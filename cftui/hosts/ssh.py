"""One SSH connection per remote host, reused by every caller, and the
host's Docker Engine socket forwarded through it to a local socket.

The connection is the operator's own: their keys (`~/.ssh/id_*`, the agent),
their `~/.ssh/config` and their `~/.ssh/known_hosts`, all as asyncssh reads
them by default. Host-key checking is never turned off: a host whose key is
not known is unreachable, with a line saying how to add it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import asyncssh

from cftui.errors import RuntimeOperationError, RuntimeUnavailable
from cftui.hosts.config import HostConfig

CONNECT_TIMEOUT_S = 10.0
# After a failed connect, calls fail at once with the same reason for this
# long, so a kill or a status of ten bots on a down host waits once, not ten times.
RETRY_AFTER_S = 3.0
# A host silent (keepalives unanswered) for about KEEPALIVE_S * (KEEPALIVE_MISSES
# + 1) is dropped, its forwards with it: ~40 s. At 15 s it was a minute, all
# that time the fleet's status waiting on the dead forward (the TUI's
# drop-out test waits 60 s for the host's bots to show unknown: it had one left).
KEEPALIVE_S = 10.0
KEEPALIVE_MISSES = 3


def _reason(exc: BaseException) -> str:
    """An SSH failure as a short phrase, without a traceback."""
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return "its host key is not in ~/.ssh/known_hosts (add it with ssh-keyscan or one `ssh` by hand)"
    if isinstance(exc, asyncssh.PermissionDenied):
        return "SSH refused the operator's keys (check ~/.ssh and the host's authorized_keys)"
    if isinstance(exc, asyncssh.ConnectionLost):
        return "the connection was lost (no route to it, or it dropped the link)"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True)
class Ran:
    """A command's end on the host: its exit status, stdout and stderr."""

    code: int
    out: bytes
    err: str

    def reason(self) -> str:
        """What a failed command said, trimmed for a one-line error."""
        text = self.err.strip() or self.out.decode(errors="replace").strip()
        tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-3:]
        return " | ".join(tail)[:300] if tail else f"exit status {self.code}"


_CHUNK = 1 << 16
# The operator's keys as asyncssh reads them by default (`~/.ssh/id_*`).
_DEFAULT_KEYS = ("id_ed25519_sk", "id_ecdsa_sk", "id_ed448", "id_ed25519", "id_ecdsa", "id_rsa")


def ssh_argv(host: HostConfig, remote: list[str], *, tty: bool) -> list[str]:
    """The OpenSSH command that runs `remote` (an argv, quoted here for the
    host's shell) on the host, for a caller that hands the operator's
    terminal over (`cftui shell`): the same login, keys and known_hosts as
    the link (`~/.ssh` of $HOME, as asyncssh reads them), the host key
    checked strictly whatever ~/.ssh/config says, no password asked."""
    ssh = shutil.which("ssh")
    if ssh is None:
        raise RuntimeUnavailable(
            f"host {host.name}: the ssh client is not installed (apt-get install openssh-client)"
        )
    dot_ssh = Path.home() / ".ssh"
    keys = [a for k in _DEFAULT_KEYS if (dot_ssh / k).is_file() for a in ("-i", str(dot_ssh / k))]
    return [
        ssh,
        "-t" if tty else "-T",
        "-p",
        str(host.port),
        "-l",
        host.user,
        "-oStrictHostKeyChecking=yes",
        f'-oUserKnownHostsFile="{dot_ssh / "known_hosts"}"',
        "-oPasswordAuthentication=no",
        "-oKbdInteractiveAuthentication=no",
        f"-oConnectTimeout={CONNECT_TIMEOUT_S:.0f}",
        *keys,
        host.address,
        "--",
        shlex.join(remote),
    ]


class HostLink:
    """The one SSH connection to one host, opened on first use and reopened
    after it drops, and the local end of its forwarded engine socket."""

    def __init__(self, host: HostConfig) -> None:
        if host.is_local:
            raise ValueError("the local host needs no SSH link")
        self.host = host
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._sock_dir: Path | None = None  # kept across reconnects: clients keep its path
        self._forward: asyncssh.SSHListener | None = None
        self.connects = 0  # connections opened (tests and benchmarks check reuse)
        self.side_connects = 0  # ... and side connections (`side_connection`)
        self._failed: tuple[float, RuntimeUnavailable] | None = None
        self._uid: int | None = None  # the login's, asked once

    @property
    def is_up(self) -> bool:
        """Whether the connection and its engine forward are open now."""
        return self._conn is not None and not self._conn.is_closed() and self._forward is not None

    def _down(self, why: BaseException | str) -> RuntimeUnavailable:
        text = why if isinstance(why, str) else _reason(why)
        return RuntimeUnavailable(f"host {self.host.name} ({self.host.url}) is unreachable: {text}")

    async def connection(self, timeout: float = CONNECT_TIMEOUT_S) -> asyncssh.SSHClientConnection:
        """The open connection; RuntimeUnavailable (one line) within `timeout`."""
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            await self._drop_forward()
            if self._failed is not None and time.monotonic() - self._failed[0] < RETRY_AFTER_S:
                raise RuntimeUnavailable(str(self._failed[1]))
            try:
                self._conn = await self._connect(timeout)
            except RuntimeUnavailable as error:
                self._failed = (time.monotonic(), error)
                raise
            self._failed = None
            self.connects += 1
            return self._conn

    async def _connect(self, timeout: float) -> asyncssh.SSHClientConnection:
        try:
            return await asyncio.wait_for(
                asyncssh.connect(
                    self.host.address,
                    port=self.host.port,
                    username=self.host.user,
                    keepalive_interval=KEEPALIVE_S,
                    keepalive_count_max=KEEPALIVE_MISSES,
                    login_timeout=timeout,
                ),
                timeout,
            )
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise self._down(exc) from None

    async def side_connection(
        self, timeout: float = CONNECT_TIMEOUT_S
    ) -> asyncssh.SSHClientConnection:
        """Another connection to the host, with the same keys and checks, for
        a caller that keeps several sessions open for long (an audit mirror:
        sshd allows 10 sessions a connection by default, `MaxSessions`). The
        caller closes it. Fails at once while the link's own connect fails."""
        if self._failed is not None and time.monotonic() - self._failed[0] < RETRY_AFTER_S:
            raise RuntimeUnavailable(str(self._failed[1]))
        conn = await self._connect(timeout)
        self.side_connects += 1
        return conn

    async def engine_socket(self, timeout: float = CONNECT_TIMEOUT_S) -> Path:
        """A local socket that speaks to the host's engine (`docker_socket`),
        forwarded over the connection, at one path for the link's life (in a
        0700 directory of its own), so a client made on it survives a reconnect."""
        conn = await self.connection(timeout)
        async with self._lock:
            if self._sock_dir is None:
                self._sock_dir = Path(tempfile.mkdtemp(prefix=f"cf-host-{self.host.name}-"))
            local = self._sock_dir / "docker.sock"
            if self._forward is not None:
                return local
            local.unlink(missing_ok=True)
            try:
                self._forward = await asyncio.wait_for(
                    conn.forward_local_path(str(local), self.host.docker_socket), timeout
                )
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                await self._drop_forward()
                raise self._down(exc) from None
            return local

    async def write_private(
        self,
        path: str,
        data: bytes,
        timeout: float = CONNECT_TIMEOUT_S,
        owner: tuple[int, int] | None = None,
    ) -> None:
        """Write a file on the host over SFTP, 0600 in 0700 directories made
        as needed (written under a temporary name, given to `owner` (uid,
        gid) if named, then renamed in place: a reader never sees it half
        written or not yet its owner's).

        The directory may be another user's (the proxies' own audit
        directory), who can plant a link at any name there or swap one in
        at any moment: the temporary name is unguessable and created
        exclusively (a link standing there fails the open, never is written
        through), and its mode and owner are set on the open handle, never
        by name."""
        conn = await self.connection(timeout)
        parent = path.rsplit("/", 1)[0] or "/"
        part = f"{path}.{secrets.token_hex(8)}.part"
        try:
            async with asyncio.timeout(timeout), conn.start_sftp_client() as sftp:
                await sftp.makedirs(
                    parent, attrs=asyncssh.SFTPAttrs(permissions=0o700), exist_ok=True
                )
                await sftp.chmod(parent, 0o700)
                try:
                    perms = asyncssh.SFTPAttrs(permissions=0o600)
                    async with sftp.open(part, "xb", attrs=perms) as f:
                        await f.write(data)
                        await f.chmod(0o600)
                        if owner is not None:
                            await f.chown(*owner)
                    await sftp.posix_rename(part, path)
                except BaseException:
                    with contextlib.suppress(asyncssh.SFTPError, OSError):
                        await sftp.remove(part)  # the name only, never what it points at
                    raise
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise RuntimeUnavailable(
                f"host {self.host.name}: cannot write {path}: {_reason(exc)}"
            ) from None

    async def run(
        self,
        command: str,
        *,
        stdin: IO[bytes] | bytes | None = None,
        stdout: IO[bytes] | None = None,
        timeout: float = 120.0,
        what: str = "",
    ) -> Ran:
        """Run a shell line on the host over the link: `stdin` streamed in
        (a file is read in chunks), stdout kept (or written to `stdout`, for
        a tree coming back). Secrets travel on stdin only, never on the
        command line. RuntimeUnavailable when the host is out of reach."""
        conn = await self.connection()
        label = what or command.split(" ", 1)[0]
        try:
            async with asyncio.timeout(timeout):
                proc = await conn.create_process(command, encoding=None)
                feed = asyncio.create_task(self._feed(proc, stdin))
                out = bytearray()
                async for chunk in _chunks(proc.stdout):
                    if stdout is not None:
                        stdout.write(chunk)
                    else:
                        out += chunk
                err = await proc.stderr.read()
                await feed
                done = await proc.wait(check=False)
        except TimeoutError:
            raise RuntimeUnavailable(
                f"host {self.host.name}: {label} did not finish in {timeout:.0f} s"
            ) from None
        except (OSError, asyncssh.Error) as exc:
            raise self._down(exc) from None
        text = err.decode(errors="replace") if isinstance(err, bytes) else str(err)
        return Ran(int(done.exit_status or 0), bytes(out), text)

    @staticmethod
    async def _feed(proc: asyncssh.SSHClientProcess, stdin: IO[bytes] | bytes | None) -> None:
        try:
            if isinstance(stdin, bytes):
                proc.stdin.write(stdin)
            elif stdin is not None:
                while chunk := await asyncio.to_thread(stdin.read, _CHUNK):
                    proc.stdin.write(chunk)
                    await proc.stdin.drain()
            proc.stdin.write_eof()
        except (OSError, asyncssh.Error, BrokenPipeError):
            return  # the command ended first: its exit status says why

    async def require_root(self, what: str) -> None:
        """RuntimeOperationError (one line) unless the link logs in as root:
        a bot's files are placed there as root (its secrets given to the
        services' users, trees unpacked and handed over with `setpriv`, the
        host's iptables rules), which a user in the `docker` group cannot do."""
        if self._uid is None:
            ran = await self.run("id -u", timeout=20, what="id -u")
            text = ran.out.decode(errors="replace").strip()
            if ran.code != 0 or not text.isdigit():
                raise RuntimeOperationError(
                    f"host {self.host.name}: `id -u` failed: {ran.reason()}"
                )
            self._uid = int(text)
        if self._uid != 0:
            port = f":{self.host.port}" if self.host.port != 22 else ""
            raise RuntimeOperationError(
                f"host {self.host.name}: user {self.host.user} is not root (uid {self._uid}): "
                f"{what} needs root there (secrets given to the services' users, setpriv, "
                f'iptables): log in as root (url = "ssh://root@{self.host.server}{port}")'
            )

    async def open_tcp(self, host: str, port: int) -> tuple[asyncssh.SSHReader, asyncssh.SSHWriter]:
        """A TCP connection opened by the host itself (its sshd's
        direct-tcpip), to an address only it reaches: a container's on one
        of its bridges, or its own loopback. OSError when nothing answers."""
        conn = await self.connection()
        try:
            return await conn.open_connection(host, port)
        except asyncssh.Error as exc:
            raise OSError(str(exc)) from None

    async def _drop_forward(self) -> None:
        forward, self._forward = self._forward, None
        if forward is not None:
            forward.close()

    async def aclose(self) -> None:
        await self._drop_forward()
        sock_dir, self._sock_dir = self._sock_dir, None
        if sock_dir is not None:
            shutil.rmtree(sock_dir, ignore_errors=True)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            await conn.wait_closed()


async def _chunks(stream: asyncssh.SSHReader) -> AsyncIterator[bytes]:
    while chunk := await stream.read(_CHUNK):
        yield chunk if isinstance(chunk, bytes) else chunk.encode()
