"""Everything inside a Lima VM goes through one asyncssh connection per VM,
opened with the settings of the VM's own `ssh.config` (Lima writes it at
each start: the port changes) and reused for every command; rsync uses the
same file through `ssh -F`.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from cftui.errors import RuntimeOperationError, RuntimeUnavailable

CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SSHSettings:
    """The parts of Lima's ssh.config that a client needs."""

    alias: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    config_file: Path


def parse_ssh_config(path: Path) -> SSHSettings:
    """Read the first `Host` block of a Lima ssh.config."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuntimeUnavailable(f"cannot read {path}: {exc.strerror}") from None
    alias = hostname = user = ""
    port = 22
    identities: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        if "=" in key and not value:
            key, _, value = key.partition("=")
        key = key.lower()
        value = value.strip().strip('"')
        if key == "host":
            if alias:
                break
            alias = value.split()[0]
        elif key == "hostname":
            hostname = value
        elif key == "port":
            port = int(value)
        elif key == "user":
            user = value
        elif key == "identityfile":
            identities.append(str(Path(value).expanduser()))
    if not alias or not user:
        raise RuntimeUnavailable(f"{path} has no Host block with a User")
    return SSHSettings(alias, hostname or "127.0.0.1", port, user, tuple(identities), path)


@dataclass(frozen=True)
class Completed:
    code: int
    out: str
    err: str

    def reason(self) -> str:
        """The output of a failed command, trimmed for a one-line error."""
        text = (self.err.strip() or self.out.strip()).splitlines()
        tail = [ln.strip() for ln in text if ln.strip()][-3:]
        return " | ".join(tail) if tail else f"exit status {self.code}"


class VMShell:
    """One reused SSH connection to one VM."""

    def __init__(self, vm: str, ssh_config: Path) -> None:
        self.vm = vm
        self.ssh_config = ssh_config
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self.connects = 0  # how many connections were opened (the bench checks 1)

    async def connection(self, timeout: float = CONNECT_TIMEOUT_S) -> asyncssh.SSHClientConnection:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            s = parse_ssh_config(self.ssh_config)
            try:
                self._conn = await asyncio.wait_for(
                    asyncssh.connect(
                        s.hostname,
                        port=s.port,
                        username=s.user,
                        client_keys=list(s.identity_files) or None,
                        known_hosts=None,  # Lima: StrictHostKeyChecking=no, fresh keys per VM
                        agent_path=None,
                        keepalive_interval=15,
                    ),
                    timeout,
                )
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                raise RuntimeUnavailable(
                    f"VM {self.vm}: SSH unreachable at {s.hostname}:{s.port} "
                    f"({type(exc).__name__}: {exc or 'timeout'}); "
                    f"try `limactl shell {self.vm}`"
                ) from None
            self.connects += 1
            return self._conn

    async def run(
        self,
        command: str,
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
        what: str = "",
        root: bool = True,
    ) -> Completed:
        """Run `command` (a shell line), as root unless `root=False` (sudo costs
        tens of ms); secrets travel on stdin only."""
        conn = await self.connection()
        line = f"sudo -n sh -c {shlex.quote(command)}" if root else command
        # asyncssh sends no end of input for an empty `input`: the command
        # would wait on stdin forever (an empty file written: `cat > f`).
        stdin = {"stdin": asyncssh.DEVNULL} if input == "" else {}
        try:
            res = await asyncio.wait_for(
                conn.run(line, input=input or None, check=False, **stdin),
                timeout,
            )
        except TimeoutError:
            raise RuntimeOperationError(
                f"VM {self.vm}: {what or command.split()[0]} did not finish in {timeout:.0f} s"
            ) from None
        except (OSError, asyncssh.Error) as exc:
            await self.close()
            raise RuntimeUnavailable(f"VM {self.vm}: SSH connection lost ({exc})") from None
        done = Completed(int(res.exit_status or 0), str(res.stdout or ""), str(res.stderr or ""))
        if check and done.code != 0:
            raise RuntimeOperationError(
                f"VM {self.vm}: {what or 'command'} failed: {done.reason()}"
            )
        return done

    async def lines(self, command: str) -> AsyncIterator[str]:
        """The stdout lines of a long-running root command (journalctl -f, tail -F)."""
        conn = await self.connection()
        proc = await conn.create_process(
            f"sudo -n sh -c {shlex.quote(command)}", stderr=asyncssh.DEVNULL
        )
        try:
            async for line in proc.stdout:
                yield line.rstrip("\n")
        finally:
            proc.close()

    async def write_file(
        self, path: str, data: str, *, owner: str = "root", mode: str = "0600"
    ) -> None:
        """Write a file as root through stdin, atomically, with its final owner and mode:
        the content never appears on a command line or in an environment."""
        q = shlex.quote
        tmp = f"{path}.cftui-tmp"
        await self.run(
            f"umask 077 && cat > {q(tmp)} && chown {q(owner)}: {q(tmp)} && chmod {mode} {q(tmp)} "
            f"&& mv -f {q(tmp)} {q(path)}",
            input=data,
            what=f"writing {path}",
        )

    async def read_file_as(self, user: str, path: str, *, max_bytes: int = 8 << 20) -> str | None:
        """A regular file in a tree `user` (a gateway) can write, read as that
        user: a link the agent planted gets it nothing it could not read
        itself. None when absent; a link or special file is refused."""
        q = shlex.quote
        res = await self.run(
            f"runuser -u {q(user)} -- sh -c "
            + q(
                'f=$1; [ -e "$f" ] || [ -L "$f" ] || exit 4; '
                '{ [ -L "$f" ] || [ ! -f "$f" ]; } && exit 3; '
                'head -c "$2" -- "$f"'
            )
            + f" sh {q(path)} {max_bytes + 1}",
            check=False,
            what=f"reading {path}",
        )
        if res.code == 4:
            return None
        if res.code == 3:
            raise RuntimeOperationError(
                f"VM {self.vm}: refusing {path}: it is a link or not a regular file, in a "
                "tree the gateway can write: remove it, or restore a snapshot, and try again"
            )
        if res.code != 0:
            raise RuntimeOperationError(f"VM {self.vm}: reading {path} failed: {res.reason()}")
        if len(res.out.encode()) > max_bytes:
            raise RuntimeOperationError(f"VM {self.vm}: {path} is larger than {max_bytes} bytes")
        return res.out

    async def write_file_as(self, user: str, path: str, data: str, *, mode: str = "0600") -> None:
        """Replace a file in a tree `user` (a gateway) can write, as that user,
        so that no privilege is used there: `mv -T` replaces a planted link
        instead of moving the file into the directory it points at."""
        q = shlex.quote
        tmp = f"{path}.cftui-tmp"
        await self.run(
            f"runuser -u {q(user)} -- sh -c "
            + q('umask 077 && cat > "$1" && chmod "$3" "$1" && mv -fT -- "$1" "$2"')
            + f" sh {q(tmp)} {q(path)} {q(mode)}",
            input=data,
            what=f"writing {path}",
        )

    async def http_get(self, port: int, path: str, timeout: float = 2.0) -> int | None:
        """Status of GET http://127.0.0.1:PORT/PATH inside the VM, over the SSH
        connection (direct-tcpip); None when nothing answers."""
        conn = await self.connection()
        try:
            reader, writer = await asyncio.wait_for(
                conn.open_connection("127.0.0.1", port), timeout
            )
        except (OSError, asyncssh.Error, TimeoutError):
            return None
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            line = await asyncio.wait_for(reader.readline(), timeout)
            parts = line.decode(errors="replace").split()
            return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
        except (OSError, asyncssh.Error, TimeoutError, ValueError):
            return None
        finally:
            writer.close()

    def rsync_shell(self) -> tuple[str, str]:
        """(`-e` value, host alias) for rsync over the same ssh.config."""
        s = parse_ssh_config(self.ssh_config)
        return f"ssh -F {shlex.quote(str(self.ssh_config))} -o BatchMode=yes", s.alias

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(TimeoutError, OSError, asyncssh.Error):
                await asyncio.wait_for(conn.wait_closed(), 2)


async def rsync(shell: VMShell, *args: str, what: str, tolerate: tuple[int, ...] = ()) -> None:
    """rsync with the VM's ssh.config; a failure is one line with rsync's
    reason (an exit status in `tolerate` is none)."""
    e, _alias = shell.rsync_shell()
    proc = await asyncio.create_subprocess_exec(
        "rsync",
        "-e",
        e,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await proc.communicate()
    if proc.returncode != 0 and proc.returncode not in tolerate:
        text = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        raise RuntimeOperationError(
            f"VM {shell.vm}: rsync of {what} failed: {text[-1] if text else proc.returncode}"
        )
