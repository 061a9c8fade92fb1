"""The Docker hosts of a fleet (CONTRACTS §12): `config` reads `[hosts.NAME]`
of fleet.toml, `ssh` holds the one connection per remote host and the
engine socket forwarded through it, `probe` answers `cftui hosts`.
"""
