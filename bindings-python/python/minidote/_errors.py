"""Exception classes of minidote. Each also derives from the builtin that fits,
so ``except ValueError`` or ``except TimeoutError`` work as expected."""


class MinidoteError(Exception):
    """Base class of every minidote error."""


class InvalidOperation(MinidoteError, ValueError):
    """An update or key is invalid (unknown type or op, wrong argument, int
    outside 64 bits, ...). Nothing of the batch was applied."""


class ClockTimeout(MinidoteError, TimeoutError):
    """The replica did not reach the given clock within the timeout."""


class StorageError(MinidoteError, OSError):
    """SQLite trouble, or the file is locked by another process."""


class ProtocolError(MinidoteError):
    """Bad frames, version or room mismatch, or a refused token."""
