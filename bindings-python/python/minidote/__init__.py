"""minidote: an embeddable, offline-first, causally consistent CRDT store.

    >>> import minidote
    >>> with minidote.Replica() as r:
    ...     likes = ("likes", "counter_pn", "demo")
    ...     clock = r.update_objects([(likes, "increment", 2)])
    ...     values, clock = r.read_objects([likes], clock)
    ...     values
    [2]

A replica with a ``path`` is durable in SQLite; ``listen``/``connect`` link
replicas (and relays) over TCP. See the project README for more.
"""

from ._errors import (
    ClockTimeout,
    InvalidOperation,
    MinidoteError,
    ProtocolError,
    StorageError,
)
from ._minidote import PROTOCOL_VERSION, Clock, Replica

__all__ = [
    "Clock",
    "ClockTimeout",
    "InvalidOperation",
    "MinidoteError",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "Replica",
    "StorageError",
]
