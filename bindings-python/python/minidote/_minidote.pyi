"""Type stubs for the compiled extension ``minidote._minidote``."""

# A key is ``(key, type, bucket)``; the type is one of counter_pn,
# counter_pn_sb, set_aw, set_rw, set_go, set_2p, register_mv, register_lww,
# flag_ew, flag_dw, map_rr, map_go, list, text. An update is ``(key, op)`` or
# ``(key, op, arg)``, e.g. ``(k, "increment", 2)``.
#
# Maps: a field is ``[name, type]`` (any type, maps included). Ops are
# ``(m, "update", [field, op])`` or ``(m, "update", [field, op, arg])``, and
# for ``map_rr`` also ``(m, "remove", field)`` and ``(m, "reset")``, e.g.
# ``(doc, "update", [["meta", "map_rr"], "update", [["tags", "set_aw"], "add", "x"]])``.
# A map reads as ``{name: value}``; a field back at its initial state is
# absent. ``remove`` and ``reset`` undo what this replica had observed of a
# field, for every type; an update concurrent with them survives.
#
# Lists and text: ``(l, "insert", [index, value])``, ``(l, "insert_all",
# [index, [values]])``, ``(l, "delete", [index, count])``; ``(t, "insert",
# [index, "string"])``, ``(t, "delete", [index, count])``, ``(t, "splice",
# [index, count, "string"])``. Indexes count code points (as ``len(str)``);
# ``0 <= index <= length`` for inserts, ``index + count <= length`` for
# deletes, else ``InvalidOperation`` and nothing of the call is applied.
# Concurrent inserts at one place never interleave.

import os
from types import TracebackType
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Tuple, Union, final

__all__ = ["Clock", "Replica", "Unsubscribe", "PROTOCOL_VERSION"]

_Key = Tuple[str, str, str]
_Delta = List[Dict[str, Any]]

PROTOCOL_VERSION: int

@final
class Clock:
    """An immutable vector clock; the bytes are the same in every binding."""

    def __new__(cls) -> "Clock": ...
    @staticmethod
    def from_bytes(b: bytes) -> "Clock":
        """Parse bytes made by ``to_bytes`` (here or in JS). Raises InvalidOperation."""
    def to_bytes(self) -> bytes: ...
    def to_dict(self) -> Dict[str, int]:
        """``{replica_id (16 hex digits): highest seq seen}``."""
    def merge(self, other: "Clock") -> "Clock":
        """The least upper bound of both clocks."""
    def concurrent(self, other: "Clock") -> bool:
        """Neither clock is ≤ the other."""
    def __le__(self, other: "Clock", /) -> bool: ...
    def __lt__(self, other: "Clock", /) -> bool: ...
    def __ge__(self, other: "Clock", /) -> bool: ...
    def __gt__(self, other: "Clock", /) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __len__(self) -> int: ...

@final
class Unsubscribe:
    """Returned by ``Replica.subscribe``: call it to end the subscription."""

    def __call__(self) -> None: ...

@final
class Replica:
    """A full replica of a room's data: durable in SQLite when ``path`` is
    given, in memory otherwise; linked to peers and relays over TCP."""

    def __new__(
        cls,
        path: Optional[Union[str, "os.PathLike[str]"]] = None,
        *,
        room: str = "default",
        snapshot_every: int = 10000,
        durability: str = "full",
    ) -> "Replica": ...
    @property
    def id(self) -> str:
        """16 hex digits; the same after reopening the same path."""
    @property
    def room(self) -> str: ...
    @property
    def path(self) -> Optional[str]: ...
    @property
    def closed(self) -> bool: ...
    def update_objects(
        self,
        updates: Iterable[Union[Tuple[Tuple[str, str, str], str], Tuple[Tuple[str, str, str], str, Any]]],
        clock: Optional[Clock] = None, timeout: Optional[float] = 10.0
    ) -> Clock:
        """Run one atomic transaction; return the clock that includes it.

        Returns only once the transaction is stored. With ``clock``, wait
        until this replica has seen it (``ClockTimeout`` after ``timeout``
        seconds). Raises ``InvalidOperation`` if any update is invalid; then
        nothing is applied."""
    def read_objects(
        self, keys: Iterable[Tuple[str, str, str]], clock: Optional[Clock] = None, timeout: Optional[float] = 10.0
    ) -> Tuple[List[Any], Clock]:
        """Read values (same order as ``keys``) and the clock they reflect."""
    def aupdate_objects(
        self,
        updates: Iterable[Union[Tuple[Tuple[str, str, str], str], Tuple[Tuple[str, str, str], str, Any]]],
        clock: Optional[Clock] = None, timeout: Optional[float] = 10.0
    ) -> Awaitable[Clock]:
        """``update_objects`` for asyncio: ``await r.aupdate_objects(...)``
        runs it on the running loop's executor, so the loop is never
        blocked. Needs a running event loop (``RuntimeError`` otherwise)."""
    def aread_objects(
        self, keys: Iterable[Tuple[str, str, str]], clock: Optional[Clock] = None, timeout: Optional[float] = 10.0
    ) -> Awaitable[Tuple[List[Any], Clock]]:
        """``read_objects`` for asyncio (see ``aupdate_objects``)."""
    def cursor(self, key: _Key, index: int) -> bytes:
        """An opaque position at ``index`` (code points) of a list or text
        that stays with its element while others edit."""
    def resolve(self, cursor: bytes) -> int:
        """The index (code points) a cursor points at now."""
    def subscribe(self, callback: Callable[[List[_Key], Dict[_Key, _Delta]], Any]) -> Unsubscribe:
        """Call ``callback(keys, deltas)`` after every local and remote
        change, on a background thread. ``deltas`` maps each changed list or
        text to ``[{"retain": n}, {"insert": x}, {"delete": n}]`` (code
        points; ``x`` a string for text, a list for lists)."""
    def on_local_update(self, callback: Callable[[bytes], Any]) -> Unsubscribe:
        """Call ``callback(frame)`` with a frame of this replica's own writes
        once they are durable, on a background thread: carry it over any
        channel and ``apply_update`` it at the other end."""
    def on_progress(self, callback: Callable[[Dict[str, Any]], Any]) -> Unsubscribe:
        """Call ``callback(progress)`` while this replica catches up from its
        links, on a background thread. ``progress`` is a dict:
        ``received`` and ``expected`` (transactions of this catch-up; a
        merged snapshot counts what it covers), ``bytes`` (received since it
        started) and ``done`` (True on its last event: complete, or given up
        because no link is left). A catch-up starts when a peer's handshake
        shows writes this replica lacks."""
    def catch_up(self, timeout: float = 10.0) -> bool:
        """Wait until every ``connect``ed relay or peer has completed its
        handshake and everything it had then has arrived here; False if that
        did not happen within ``timeout`` seconds (or there is no link).
        Read after it to see the room as it was when you joined."""
    def keep_history(self, n: int) -> None:
        """Keep summaries of the last ``n`` transactions this replica
        delivers (local and remote) for ``inspect()``; 0 turns it off."""
    def inspect(self, *, buffered: int = 32) -> Dict[str, List[Dict[str, Any]]]:
        """What an inspector shows. ``"history"``: the last transactions
        (see ``keep_history``), oldest first, each ``{"origin": hex id,
        "seq", "deps": Clock (sparse), "keys": [key], "local": bool}``.
        ``"buffered"``: up to ``buffered`` transactions waiting in the causal
        buffer, each ``{"origin", "seq", "waits_for": Clock}`` (the deps
        not delivered yet)."""
    def seq_stats(self, key: _Key) -> Dict[str, int]:
        """The shape of a list or text in memory: ``{"runs", "elements",
        "visible", "tombstones"}``; raises ``InvalidOperation`` for other
        types."""
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every connected relay or peer has stored this
        replica's writes; False if that did not happen within ``timeout``
        seconds (a link down, a peer silent). True with no link only when
        there is nothing to deliver."""
    def export_since(self, clock: Optional[Clock] = None) -> List[bytes]:
        """The wire frames a replica at ``clock`` lacks (everything without
        one): carry them over any channel, then ``apply_update`` them."""
    def apply_update(self, frame: bytes) -> Dict[str, Any]:
        """Apply a frame from any channel: ``{"applied": n, "pending": n,
        "missing": Clock}``. Garbage raises ``ProtocolError`` and applies
        nothing; a frame applied twice changes nothing."""
    def listen(
        self,
        addr: str = "127.0.0.1:0",
        *,
        auth_secret: Optional[str] = None,
        auth_public_key: Optional[bytes] = None,
    ) -> int:
        """Accept peers on ``addr``; return the bound port.

        With ``auth_secret`` (HS256) or ``auth_public_key`` (an Ed25519 public
        key in PEM), every peer must present a JWT for this room, as at a
        relay: ``read`` peers may not write, ``write`` peers may send only
        their own transactions, ``forward`` peers may relay others', and only
        ``snapshot`` peers may send snapshots. Without either, the listener is
        open and trusts its peers with the room."""
    def connect(
        self, addr: str, token: Optional[str] = None, *, ca_file: Optional[Union[str, "os.PathLike[str]"]] = None
    ) -> None:
        """Link to a peer or a relay: ``"host:port"`` (TCP), or a relay's
        ``ws://host:port/sync`` or ``wss://…/sync`` (TLS with the system's
        roots, or only the PEM certificates in ``ca_file``). Reconnects with
        backoff until ``disconnect(addr)`` or ``close()``."""
    def disconnect(self, addr: str) -> bool:
        """Drop the link to ``addr`` (to make partitions)."""
    def peers(self) -> List[Dict[str, Any]]:
        """``[{"addr", "id", "connected", "clock"}]``."""
    def stats(self) -> Dict[str, Any]:
        """Counters: id, clock, buffered, pending_requests, txns_local, txns_remote, ..."""
    def snapshot(self) -> None:
        """Take a snapshot now and prune the log."""
    def close(self, *, flush_timeout: float = 2.0) -> None:
        """Close links and the store. Idempotent. With links, first wait up
        to ``flush_timeout`` seconds for peers to store this replica's
        writes (``flush``), and log a warning if they did not."""
    def __enter__(self) -> "Replica": ...
    def __exit__(
        self,
        exc_type: Optional[type],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
