"""The keys of a Lima template, as `templates/default.yaml` of lima-vm/lima
documents them (read at commit 00d5b9fad31d67782135082aeba818ddcb21833c;
`base`, `user` and `nestedVirtualization` from v2's template). Nested dicts
list the documented sub-keys; a list value holds the keys of each item.
"""

from __future__ import annotations

ANY = None  # a key whose value this check does not look into

SCHEMA: dict = {
    "base": ANY,
    "minimumLimaVersion": ANY,
    "vmType": ANY,
    "vmOpts": ANY,
    "os": ANY,
    "arch": ANY,
    "images": [{"location", "arch", "digest", "kernel", "initrd"}],
    "cpuType": ANY,
    "cpus": ANY,
    "memory": ANY,
    "disk": ANY,
    "mounts": [{"location", "mountPoint", "writable", "sshfs", "9p", "virtiofs"}],
    "mountTypesUnsupported": ANY,
    "mountType": ANY,
    "mountInotify": ANY,
    "additionalDisks": ANY,
    "ssh": {"localPort", "loadDotSSHPubKeys", "forwardAgent", "forwardX11", "forwardX11Trusted", "overVsock"},
    "caCerts": {"removeDefaults", "files", "certs"},
    "upgradePackages": ANY,
    "containerd": {"system", "user", "archives"},
    "provision": [{"mode", "script", "file", "skipDefaultDependencyResolution", "playbook", "path", "content", "expression", "owner", "permissions", "overwrite", "user"}],
    "probes": [{"mode", "description", "script", "file", "hint"}],
    "rosetta": {"enabled", "binfmt"},
    "timezone": ANY,
    "firmware": ANY,
    "audio": ANY,
    "video": ANY,
    "networks": ANY,
    "portForwards": [{"guestIP", "guestIPMustBeZero", "guestPort", "guestPortRange", "hostIP", "hostPort", "hostPortRange", "proto", "ignore", "guestSocket", "hostSocket", "reverse"}],
    "copyToHost": ANY,
    "message": ANY,
    "env": ANY,
    "param": ANY,
    "propagateProxyEnv": ANY,
    "hostResolver": {"enabled", "ipv6", "hosts"},
    "dns": ANY,
    "guestInstallPrefix": ANY,
    "plain": ANY,
    "user": ANY,
    "nestedVirtualization": ANY,
}  # fmt: skip

VM_TYPES = {"qemu", "vz", "wsl2", "krunkit", "default"}
ARCHES = {"x86_64", "aarch64", "armv7l", "riscv64", "ppc64le", "s390x", "default"}
PROVISION_MODES = {"system", "user", "boot", "dependency", "ansible", "data", "yq"}
PROBE_MODES = {"readiness"}


def unknown_keys(doc: dict, schema: dict = SCHEMA, where: str = "") -> list[str]:
    """Every key of `doc` that the documented template does not have."""
    bad: list[str] = []
    for key, value in doc.items():
        path = f"{where}.{key}" if where else key
        if key not in schema:
            bad.append(path)
            continue
        sub = schema[key]
        if isinstance(sub, set) and isinstance(value, dict):
            bad += [f"{path}.{k}" for k in value if k not in sub]
        elif isinstance(sub, list) and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    bad += [f"{path}[{i}].{k}" for k in item if k not in sub[0]]
    return bad
