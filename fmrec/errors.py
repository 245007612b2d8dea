"""The one error type the CLI turns into a clear message and a non-zero exit."""


class FmrecError(Exception):
    """A user-facing failure: the message names the file, line or field and what was expected."""

    exit_code = 2


class InputError(FmrecError):
    """Input data (a file, a record, a request) is missing, empty or malformed."""


class OutputError(FmrecError):
    """An output location cannot be written."""
