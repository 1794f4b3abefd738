"""What the command-line entry points share (private): one-line errors and exit codes."""

from __future__ import annotations

import argparse
import sys
from typing import Callable


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line, without the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def run_guarded(prog: str, action: Callable[[], int | None], interrupted: str) -> int:
    """Run ``action``; a ValueError or FloatingPointError becomes one line on stderr and exit 2,
    Ctrl-C becomes ``interrupted`` and exit 130."""
    try:
        return action() or 0
    except (ValueError, FloatingPointError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130
