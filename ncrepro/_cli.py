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


def program_name(command: str, module: str) -> str:
    """How the user called us: the console command (``ncrepro-train``) or ``python -m module``."""
    import os

    called = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return command if called == command else f"python -m {module}"


def run_guarded(prog: str, action: Callable[[], int | None], interrupted: str) -> int:
    """Run ``action``; a ValueError or FloatingPointError becomes one line on stderr and exit 2,
    Ctrl-C becomes ``interrupted`` and exit 130."""
    try:
        return action() or 0
    except (ValueError, FloatingPointError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``--list | head``): nothing more to say, and nothing to flush.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        print(f"{prog}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130
