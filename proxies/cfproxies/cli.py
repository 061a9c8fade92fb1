"""What every command here shares: a usage error is one line, not a usage dump."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn


def _columns() -> int:
    """`shutil.get_terminal_size().columns`, which argparse asks for each
    formatter it makes (one an argument): without loading shutil and its
    compression modules, a twentieth of a quick command's imports."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 0
        except (ValueError, OSError):
            columns = 0
    return columns or 80


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def _get_formatter(self) -> argparse.HelpFormatter:
        # Every HelpFormatter takes `width`; typeshed's protocol names only `prog`.
        make: Any = self.formatter_class
        formatter: argparse.HelpFormatter = make(prog=self.prog, width=_columns() - 2)
        return formatter

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")
