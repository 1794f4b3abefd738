"""What the command-line entry points share (private): one-line errors and exit codes."""

from __future__ import annotations

import argparse
import sys
from typing import Callable


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line, without the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_or_code(self, argv) -> tuple[argparse.Namespace | None, int]:
        """``(args, 0)``, or ``(None, exit code)`` after a refusal or ``--help``, so that a
        ``main()`` returns its exit code instead of raising SystemExit."""
        try:
            return self.parse_args(argv), 0
        except SystemExit as exit_:
            return None, int(exit_.code or 0)


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
