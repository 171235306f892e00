"""The one exception type for user errors.

Anything the user can fix (a bad path, a malformed line, an unknown id) is raised
as :class:`UserError` with a one-line message naming the file, field or value.
The CLI prints it as ``error: <message>`` and exits with status 2, no traceback.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
