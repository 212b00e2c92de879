"""Errors the CLI turns into one line on stderr and exit status 2."""


class UsageError(Exception):
    """Bad input: a flag, a file, a config or a name. The message is the whole story."""
