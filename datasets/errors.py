"""The one exception users see.

Every layer raises `ReplicaError` for problems with *inputs* (a missing file, a bad config key,
an unreachable endpoint); the CLI prints it as a single line and exits non-zero. It lives in the
lowest package (`datasets`) so every other package can raise it without an upward import.
"""


class ReplicaError(Exception):
    """A user-facing error: its message names the input and the reason, in one line."""

    def __init__(self, subject: object, reason: str | None = None):
        message = str(subject) if reason is None else f"{subject}: {reason}"
        super().__init__(message)
        self.subject = subject
        self.reason = reason
