"""The one error type for bad input: the commands print it as one line and exit with status 2."""

from pathlib import Path


class ReplicationError(Exception):
    """Bad input the user can fix: the message names the file and what is wrong."""

    def __init__(self, path, message: str):
        self.path = Path(path) if path is not None else None
        self.message = message
        super().__init__(f"{path}: {message}" if path is not None else message)
