"""The one error type a user can cause.

Every problem the user can fix (bad data, bad config, bad path) raises
`TextloraError` with a one-line message that names the fix. The CLI prints
it and exits with code 2; anything else is a bug and keeps its traceback.
"""


class TextloraError(Exception):
    """A problem with the user's input, explained in one line."""
