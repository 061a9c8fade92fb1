"""The agent's side of the escape suite: run inside a gateway as its user.

Stdlib only (it runs in the gateway's image). Reads a JSON plan from argv[1]
naming the attempts, makes them all (concurrently where they wait on the
network), and prints one JSON object: each attempt's name and what it got.
The test decides the verdicts; this script only reports what happened.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

TIMEOUT = 2.5


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def tcp(host: str, port: int) -> dict:
    """A plain connect: `reached` when the handshake completed."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT) as s:
            s.sendall(b"GET /direct HTTP/1.0\r\n\r\n")
            return {"reached": True, "reply": s.recv(200).decode("latin-1")}
    except OSError as exc:
        return {"reached": False, "error": _err(exc)}


def udp_dns(server: str, name: str) -> dict:
    """One DNS A query sent straight to `server`: `answered` if any reply came."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    query = b"\x13\x37\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + qname + b"\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(TIMEOUT)
        try:
            s.sendto(query, (server, 53))
            reply, _ = s.recvfrom(512)
            return {"answered": True, "bytes": len(reply)}
        except OSError as exc:
            return {"answered": False, "error": _err(exc)}


def resolve(name: str) -> dict:
    try:
        infos = socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)
        return {"resolved": True, "addresses": sorted({i[4][0] for i in infos})}
    except OSError as exc:
        return {"resolved": False, "error": _err(exc)}


def _read_reply(s: socket.socket, limit: int = 8192) -> bytes:
    reply = b""
    try:
        while len(reply) < limit:
            chunk = s.recv(limit)
            if not chunk:
                break
            reply += chunk
            if b"\r\n\r\n" in reply and _complete(reply):
                break
    except OSError:
        pass
    return reply


def _complete(reply: bytes) -> bool:
    """Whether a reply holds all the body its Content-Length announces."""
    head, _, body = reply.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return len(body) >= int(value.strip())
            except ValueError:
                return True
    return False


def raw(host: str, port: int, data: str) -> dict:
    """Bytes sent as given to a proxy; its whole reply (status line, headers, body)."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT * 2) as s:
            s.sendall(data.encode("latin-1"))
            reply = _read_reply(s)
    except OSError as exc:
        return {"status": None, "error": _err(exc), "reply": ""}
    text = reply.decode("latin-1")
    parts = text.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return {"status": status, "reply": text[:4000]}


def connect_then(proxy: tuple[str, int], target: str, inner: str, sni: str | None) -> dict:
    """CONNECT `target` through the proxy, then speak inside the tunnel:
    plain `inner` bytes, or a TLS handshake naming `sni` first."""
    try:
        s = socket.create_connection(proxy, timeout=TIMEOUT * 2)
    except OSError as exc:
        return {"connect": None, "error": _err(exc)}
    with s:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                chunk = s.recv(1)
                if not chunk:
                    break
                head += chunk
        except OSError as exc:
            return {"connect": None, "error": _err(exc)}
        text = head.decode("latin-1")
        status = int(text.split(" ", 2)[1]) if text.count(" ") >= 1 else None
        out: dict = {"connect": status, "connect_reply": text[:500]}
        if status != 200:
            out["reply"] = text + _read_reply(s).decode("latin-1")[:2000]
            return out
        try:
            if sni is not None:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                t = ctx.wrap_socket(s, server_hostname=sni)
                t.sendall(inner.encode("latin-1"))
                out["inner"] = _read_reply(t).decode("latin-1")[:2000]
            else:
                s.sendall(inner.encode("latin-1"))
                out["inner"] = _read_reply(s).decode("latin-1")[:2000]
        except (OSError, ssl.SSLError) as exc:
            out["inner_error"] = _err(exc)
        return out


def _read(path: str) -> list[str]:
    with open(path) as f:
        return f.read().splitlines()


def self_checks(plan: dict) -> dict:
    """What the agent's own process may do: identity, capabilities, mounts."""
    status = dict(line.split(":\t", 1) for line in _read("/proc/self/status") if ":\t" in line)
    mountinfo = _read("/proc/self/mountinfo")
    mounts = []
    for line in mountinfo:
        fields = line.split()
        mounts.append({"root": fields[3], "point": fields[4]})
    out = {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "caps": {
            k: status.get(k, "").strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
        },
        "no_new_privs": status.get("NoNewPrivs", "").strip(),
        "seccomp": status.get("Seccomp", "").strip(),
        "mounts": mounts,
        "paths": {p: os.path.exists(p) for p in plan["absent_paths"]},
    }
    attempts = {}

    def attempt(name: str, fn) -> None:
        try:
            attempts[name] = {"done": True, "result": repr(fn())}
        except OSError as exc:
            attempts[name] = {"done": False, "errno": errno.errorcode.get(exc.errno, exc.errno)}
        except Exception as exc:
            attempts[name] = {"done": False, "error": _err(exc)}

    attempt("setuid_0", lambda: os.setuid(0))
    attempt(
        "raw_socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    )
    attempt("chown_state_to_root", lambda: os.chown("/state", 0, 0))
    attempt("mknod", lambda: os.mknod("/tmp/cf-null", 0o20666, os.makedev(1, 3)))
    libc = ctypes.CDLL(None, use_errno=True)

    def mount_tmpfs() -> None:
        if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))

    attempt("mount", mount_tmpfs)

    def unshare_user() -> None:
        if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER: a root of its own
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))

    attempt("unshare_userns", unshare_user)
    # A setuid-root binary, if the image has one, runs without its privilege.
    setuid_bins = [
        p
        for p in ("/usr/bin/su", "/bin/su", "/usr/bin/passwd", "/usr/bin/newgrp")
        if os.path.exists(p) and os.stat(p).st_mode & 0o4000
    ]
    out["setuid_binaries"] = setuid_bins
    out["attempts"] = attempts
    return out


def pids(limit: int) -> dict:
    """Threads until the kernel refuses one: the pids limit counts threads."""
    threading.stack_size(64 * 1024)
    stop = threading.Event()
    started = 0
    error = ""
    threads = []
    try:
        while started < limit * 2:
            t = threading.Thread(target=stop.wait, daemon=True)
            t.start()
            threads.append(t)
            started += 1
    except RuntimeError as exc:
        error = _err(exc)
    stop.set()
    for t in threads:
        t.join()
    pids_max = ""
    for path in ("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max", *_own_cgroup("pids")):
        if os.path.exists(path):
            pids_max = _read(path)[0].strip()
            break
    return {"threads": started, "error": error, "pids_max": pids_max}


def _own_cgroup(control: str) -> list[str]:
    """`control`'s file in this process's own cgroup, as /proc/self/cgroup
    names it (a systemd unit has no cgroup namespace: /sys/fs/cgroup is the
    root's), on the unified hierarchy and on v1's per-controller one."""
    out = []
    for line in _read("/proc/self/cgroup"):
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            out.append(f"/sys/fs/cgroup{path}/{control}.max")
        elif control in controllers.split(","):
            out.append(f"/sys/fs/cgroup/{controllers}{path}/{control}.max")
    return out


def writes(paths: list[str]) -> dict:
    """Each path opened for appending (created if absent), links followed as
    an attacker would: `opened` when the kernel let it. Nothing is written."""
    out = {}
    for path in paths:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            out[path] = {"opened": False, "errno": errno.errorcode.get(exc.errno, exc.errno)}
        else:
            os.close(fd)
            out[path] = {"opened": True}
    return out


def reads(paths: list[str]) -> dict:
    """Each path listed (a directory) or read (anything else): `read` when
    the kernel let it, with how many entries or bytes came back."""
    out = {}
    for path in paths:
        try:
            if os.path.isdir(path):
                got = len(os.listdir(path))
            else:
                with open(path, "rb") as f:
                    got = len(f.read(1 << 16))
        except OSError as exc:
            out[path] = {"read": False, "errno": errno.errorcode.get(exc.errno, exc.errno)}
        else:
            out[path] = {"read": True, "size": got}
    return out


def proc_mem(pids: list[int]) -> dict:
    """Each process's memory opened for writing (what ptrace attach allows:
    code injection): `opened` when the kernel let it."""
    out = {}
    for pid in pids:
        try:
            fd = os.open(f"/proc/{pid}/mem", os.O_RDWR)
        except OSError as exc:
            out[str(pid)] = {"opened": False, "errno": errno.errorcode.get(exc.errno, exc.errno)}
        else:
            os.close(fd)
            out[str(pid)] = {"opened": True}
    return out


MEMORY_HOG = """
import sys
chunks = []
step = 16 * 1024 * 1024
for _ in range(int(sys.argv[1]) // 16):
    b = bytearray(step)
    for i in range(0, step, 4096):
        b[i] = 1
    chunks.append(b)
print("allocated all", flush=True)
"""


def memory(limit_mb: int) -> dict:
    """A child that touches twice the memory limit: the kernel must stop it."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_HOG, str(limit_mb * 2)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return {
        "returncode": proc.returncode,
        "stdout": proc.stdout[-200:],
        "seconds": round(time.monotonic() - started, 2),
    }


def main() -> None:
    plan = json.loads(sys.argv[1])
    out: dict = {}
    jobs = {}
    with ThreadPoolExecutor(max_workers=48) as pool:
        for name, (host, port) in plan.get("tcp", {}).items():
            jobs[("tcp", name)] = pool.submit(tcp, host, port)
        for name, (server, qname) in plan.get("udp_dns", {}).items():
            jobs[("udp_dns", name)] = pool.submit(udp_dns, server, qname)
        for name in plan.get("resolve", []):
            jobs[("resolve", name)] = pool.submit(resolve, name)
        proxy = plan.get("proxy")
        for name, data in plan.get("raw", {}).items():
            host, port, payload = data
            jobs[("raw", name)] = pool.submit(raw, host, port, payload)
        for name, (target, inner, sni) in plan.get("tunnel", {}).items():
            jobs[("tunnel", name)] = pool.submit(connect_then, tuple(proxy), target, inner, sni)
        for (kind, name), job in jobs.items():
            out.setdefault(kind, {})[name] = job.result()
    if plan.get("self"):
        out["self"] = self_checks(plan)
    if plan.get("pids"):
        out["pids"] = pids(plan["pids"])
    if plan.get("reads"):
        out["reads"] = reads(plan["reads"])
    if plan.get("writes"):
        out["writes"] = writes(plan["writes"])
    if plan.get("proc_mem"):
        out["proc_mem"] = proc_mem(plan["proc_mem"])
    if plan.get("memory_mb"):
        out["memory"] = memory(plan["memory_mb"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
