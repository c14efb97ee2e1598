"""One error type for bad input, and the wrapper that turns it into one line and exit 2."""

import sys
from pathlib import Path


class ReplicationError(Exception):
    """Bad input the user can fix: the message names the file and what is wrong."""

    def __init__(self, path, message: str):
        self.path = Path(path) if path is not None else None
        self.message = message
        super().__init__(f"{path}: {message}" if path is not None else message)


def run_cli(main, argv=None) -> int:
    """Run a command-line `main(argv)`; bad input becomes one line on stderr and exit 2."""
    try:
        return main(argv) or 0
    except ReplicationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
