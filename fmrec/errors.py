"""The one error type the CLI turns into a clear message and a non-zero exit."""


class FmrecError(Exception):
    """A user-facing failure: the message names the file, line or field and what was expected."""

    exit_code = 2


class InputError(FmrecError):
    """Input data (a file, a record, a request) is missing, empty or malformed."""


class OutputError(FmrecError):
    """An output location cannot be written."""


class NotInModelError(FmrecError):
    """A requested id (e.g. a movie) is not in the served model (the API answers 404)."""


class ConflictError(FmrecError):
    """A valid request the served model cannot answer, e.g. it has no usable factors (the API answers 409)."""
