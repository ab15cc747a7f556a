"""The one exception type that reaches users as a one-line message."""


class Ct2mriError(Exception):
    """A problem with the user's input or environment, reported without a traceback.

    The message should name the file (or option) and the problem in one line.
    """
