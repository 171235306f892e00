"""The one exception type for user errors, and the one-line warning.

Anything the user can fix (a bad path, a malformed line, an unknown id) is raised
as :class:`UserError` with a one-line message naming the file, field or value.
The CLI prints it as ``error: <message>`` and exits with status 2, no traceback.
A setting or input that is valid but doubtful (a document cut to nothing for some
queries, judgments naming unknown documents) is a :func:`warn`: one line with counts.
"""

import sys

_WARNED: set[str] = set()


class UserError(Exception):
    """A problem with the user's input, reported as one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def warn(message: str) -> None:
    """``warning: <message>`` on one line of stderr, once per message in this process."""
    message = " ".join(str(message).split())
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"warning: {message}", file=sys.stderr)
