//! The sync protocol's frames, transactions and snapshots on the wire.
//!
//! Every frame starts with the protocol version byte, then a frame tag. A
//! transaction is `header | effects_len | effects`, so a relay can read the
//! header ([`TxnHeader`]) and keep the effects as opaque bytes. Layouts are
//! documented byte by byte in `PROTOCOL.md` and pinned by golden vectors in
//! `core/tests/golden.rs`.

use std::sync::Arc;

use crate::clock::{ReplicaId, VectorClock};
use crate::codec::{Codec, Reader, Writer};
use crate::error::DecodeError;
use crate::key::Key;
pub use crate::run::{is_run, run_frame, split_run, MAX_EXPANSION, RUN_MIN_TXNS};
use crate::types::{Effect, State};
pub use crate::version::{check_version, error_code, PROTOCOL_VERSION};

/// Encoded transaction bytes, shared between the log, records and frames.
pub type TxnBytes = Arc<[u8]>;

/// Frame tags.
mod tag {
    pub const HELLO: u8 = 0;
    pub const TXNS: u8 = 1;
    pub const NEED: u8 = 2;
    pub const SNAPSHOT: u8 = 3;
    pub const ERROR: u8 = 4;
    pub const PING: u8 = 5;
    pub const PONG: u8 = 6;
    pub const STORED: u8 = 7;
    pub const SNAPSHOT_PART: u8 = 8;
    pub const RUN: u8 = crate::run::RUN_TAG;
    pub const PACKED_RUN: u8 = crate::run::PACKED_RUN_TAG;
}

/// `Hello`: the first frame on every link, in both directions.
#[derive(Clone, PartialEq, Debug)]
pub struct Hello {
    /// The sender's replica id (a relay sends its own random id).
    pub replica: ReplicaId,
    /// The replication group.
    pub room: String,
    /// Everything the sender has.
    pub clock: VectorClock,
    /// An auth token for the relay.
    pub token: Option<String>,
}

/// One protocol frame.
#[derive(Clone, PartialEq, Debug)]
pub enum Frame {
    /// Opens a link and announces the sender's clock.
    Hello(Hello),
    /// A batch of encoded transactions, in an order that respects causality.
    Txns(Vec<TxnBytes>),
    /// "Send me what I lack": the sender's clock.
    Need(VectorClock),
    /// A full state with its clock, sent when the transactions a peer lacks
    /// were pruned. The bytes are a [`Snapshot`] encoding.
    Snapshot(Vec<u8>),
    /// The sender refuses something; usually followed by closing the link.
    Error {
        /// One of [`error_code`].
        code: u16,
        /// A human-readable reason.
        message: String,
    },
    /// Liveness probe.
    Ping(u64),
    /// Answer to a ping with the same nonce.
    Pong(u64),
    /// "I have durably stored this much": the sender's stored clock. A
    /// relay with a durable log sends it after each group commit, so a
    /// writer knows which of its transactions are safe there.
    Stored(VectorClock),
    /// One piece of a [`Snapshot`] encoding too large for one frame: bytes
    /// `offset..offset + bytes.len()` of `total`. The receiver decodes the
    /// snapshot once it has every byte ([`SnapshotAssembler`]); pieces may
    /// arrive in any order, more than once, and across resends of the same
    /// snapshot, so an unordered or lossy transport works too.
    SnapshotPart {
        /// Names the snapshot ([`snapshot_id`]): pieces of one snapshot
        /// only are put together.
        id: u64,
        /// Size of the whole snapshot encoding.
        total: u64,
        /// Where these bytes start in it.
        offset: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

impl Frame {
    /// The frame's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "Hello",
            Frame::Txns(_) => "Txns",
            Frame::Need(_) => "Need",
            Frame::Snapshot(_) => "Snapshot",
            Frame::Error { .. } => "Error",
            Frame::Ping(_) => "Ping",
            Frame::Pong(_) => "Pong",
            Frame::Stored(_) => "Stored",
            Frame::SnapshotPart { .. } => "SnapshotPart",
        }
    }

    /// Encodes the frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64);
        w.u8(PROTOCOL_VERSION);
        match self {
            Frame::Hello(h) => {
                w.u8(tag::HELLO);
                w.u64_le(h.replica.0);
                w.str(&h.room);
                h.clock.encode(&mut w);
                match &h.token {
                    None => w.u8(0),
                    Some(t) => {
                        w.u8(1);
                        w.str(t);
                    }
                }
            }
            Frame::Txns(txns) => {
                w.u8(tag::TXNS);
                w.varint(txns.len() as u64);
                for t in txns {
                    w.raw(t);
                }
            }
            Frame::Need(c) => {
                w.u8(tag::NEED);
                c.encode(&mut w);
            }
            Frame::Snapshot(s) => {
                w.u8(tag::SNAPSHOT);
                w.raw(s);
            }
            Frame::Error { code, message } => {
                w.u8(tag::ERROR);
                w.varint(u64::from(*code));
                w.str(message);
            }
            Frame::Ping(n) => {
                w.u8(tag::PING);
                w.varint(*n);
            }
            Frame::Pong(n) => {
                w.u8(tag::PONG);
                w.varint(*n);
            }
            Frame::Stored(c) => {
                w.u8(tag::STORED);
                c.encode(&mut w);
            }
            Frame::SnapshotPart {
                id,
                total,
                offset,
                bytes,
            } => {
                w.u8(tag::SNAPSHOT_PART);
                w.u64_le(*id);
                w.varint(*total);
                w.varint(*offset);
                w.raw(bytes);
            }
        }
        w.into_vec()
    }

    /// Decodes one frame. Transactions are split by their headers and kept
    /// as bytes (effects are not decoded). Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
        let mut r = Reader::new(bytes);
        check_version(r.u8()?)?;
        if is_run(bytes) {
            // A `Run` is another encoding of a `Txns` frame.
            let txns = split_run(bytes)?;
            for t in &txns {
                let mut h = Reader::new(t);
                TxnHeader::decode(&mut h)?;
                h.finish()?;
            }
            return Ok(Frame::Txns(txns.into_iter().map(TxnBytes::from).collect()));
        }
        let frame = match r.u8()? {
            tag::HELLO => {
                let replica = ReplicaId(r.u64_le()?);
                let room = r.str()?.to_owned();
                let clock = VectorClock::decode(&mut r)?;
                let token = match r.u8()? {
                    0 => None,
                    1 => Some(r.str()?.to_owned()),
                    tag => {
                        return Err(DecodeError::InvalidTag {
                            what: "option",
                            tag,
                        })
                    }
                };
                Frame::Hello(Hello {
                    replica,
                    room,
                    clock,
                    token,
                })
            }
            tag::TXNS => {
                let n = r.count(12)?;
                let mut txns = Vec::with_capacity(n);
                for _ in 0..n {
                    let start = r.position();
                    TxnHeader::decode(&mut r)?;
                    txns.push(TxnBytes::from(&bytes[start..r.position()]));
                }
                Frame::Txns(txns)
            }
            tag::NEED => Frame::Need(VectorClock::decode(&mut r)?),
            tag::SNAPSHOT => {
                let rest = r.take(r.remaining())?;
                Frame::Snapshot(rest.to_vec())
            }
            tag::ERROR => {
                let code = r.varint()?;
                let code = u16::try_from(code).map_err(|_| DecodeError::LengthOutOfRange {
                    len: code,
                    limit: u64::from(u16::MAX),
                })?;
                Frame::Error {
                    code,
                    message: r.str()?.to_owned(),
                }
            }
            tag::PING => Frame::Ping(r.varint()?),
            tag::PONG => Frame::Pong(r.varint()?),
            tag::STORED => Frame::Stored(VectorClock::decode(&mut r)?),
            tag::SNAPSHOT_PART => {
                let id = r.u64_le()?;
                let total = r.varint()?;
                let offset = r.varint()?;
                let bytes = r.take(r.remaining())?.to_vec();
                if bytes.is_empty()
                    || offset
                        .checked_add(bytes.len() as u64)
                        .is_none_or(|e| e > total)
                {
                    return Err(DecodeError::NonCanonical(
                        "snapshot part outside its snapshot",
                    ));
                }
                Frame::SnapshotPart {
                    id,
                    total,
                    offset,
                    bytes,
                }
            }
            tag => return Err(DecodeError::InvalidTag { what: "frame", tag }),
        };
        r.finish()?;
        Ok(frame)
    }
}

/// The parts of a `Hello` frame an authenticating server checks before it
/// decodes anything large: the replica id, the room and the token, with
/// the clock skipped (its bytes are checked to be there, nothing is
/// allocated for it). Decode the whole frame with [`Frame::decode`] once the
/// token is accepted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HelloHead<'a> {
    /// The sender's replica id.
    pub replica: ReplicaId,
    /// The room.
    pub room: &'a str,
    /// The token, if any.
    pub token: Option<&'a str>,
}

impl<'a> HelloHead<'a> {
    /// Reads the head of a `Hello` frame; any other frame is
    /// `InvalidTag { what: "Hello frame" }`.
    pub fn parse(bytes: &'a [u8]) -> Result<HelloHead<'a>, DecodeError> {
        let mut r = Reader::new(bytes);
        check_version(r.u8()?)?;
        let t = r.u8()?;
        if t != tag::HELLO {
            return Err(DecodeError::InvalidTag {
                what: "Hello frame",
                tag: t,
            });
        }
        let replica = ReplicaId(r.u64_le()?);
        let room = r.str()?;
        VectorClock::skip(&mut r)?;
        let token = match r.u8()? {
            0 => None,
            1 => Some(r.str()?),
            tag => {
                return Err(DecodeError::InvalidTag {
                    what: "option",
                    tag,
                })
            }
        };
        r.finish()?;
        Ok(HelloHead {
            replica,
            room,
            token,
        })
    }
}

/// The name of the frame with tag byte `t`, for errors about frames that
/// were not decoded.
pub fn frame_name(t: u8) -> &'static str {
    match t {
        tag::HELLO => "Hello",
        tag::TXNS => "Txns",
        tag::NEED => "Need",
        tag::SNAPSHOT => "Snapshot",
        tag::ERROR => "Error",
        tag::PING => "Ping",
        tag::PONG => "Pong",
        tag::STORED => "Stored",
        tag::SNAPSHOT_PART => "SnapshotPart",
        tag::RUN | tag::PACKED_RUN => "Run",
        _ => "an unknown frame",
    }
}

/// Reads a `Txns` frame's version, tag and transaction count, leaving the
/// reader at the first transaction.
fn txns_reader(frame: &[u8]) -> Result<(Reader<'_>, usize), DecodeError> {
    let mut r = Reader::new(frame);
    check_version(r.u8()?)?;
    let t = r.u8()?;
    if t != tag::TXNS {
        return Err(DecodeError::InvalidTag {
            what: "Txns frame",
            tag: t,
        });
    }
    let n = r.count(12)?;
    Ok((r, n))
}

/// Splits a whole `Txns` frame into its transactions' bytes without copying
/// them. Only the framing is checked (lengths and counts); each transaction
/// is validated in full when it is decoded, so this pass allocates nothing
/// per transaction.
pub fn split_txns(frame: &[u8]) -> Result<Vec<&[u8]>, DecodeError> {
    let (mut r, n) = txns_reader(frame)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = r.position();
        r.take(8)?; // origin
        r.varint()?; // seq
        VectorClock::skip(&mut r)?;
        let effects_len = r.len(r.remaining())?;
        r.take(effects_len)?;
        out.push(&frame[start..r.position()]);
    }
    r.finish()?;
    Ok(out)
}

/// Splits a whole `Txns` frame into each transaction's header and the byte
/// range of the whole encoded transaction in `frame`: all a router needs.
/// Effects are skipped, not decoded.
pub fn split_txn_headers(
    frame: &[u8],
) -> Result<Vec<(TxnHeader, std::ops::Range<usize>)>, DecodeError> {
    let (mut r, n) = txns_reader(frame)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = r.position();
        let h = TxnHeader::decode(&mut r)?;
        out.push((h, start..r.position()));
    }
    r.finish()?;
    Ok(out)
}

/// Packs encoded transactions, in order, into frames of at most `max`
/// bytes each (a transaction larger than that gets a frame alone): `Run`
/// frames for batches of [`RUN_MIN_TXNS`] or more ([`batch_frame`]; a run
/// is never larger than the `Txns` frame it replaces), else `Txns`.
pub fn txns_frames<T: AsRef<[u8]>>(txns: &[T], max: usize) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let (mut start, mut size) = (0, 3);
    for (i, t) in txns.iter().enumerate() {
        let len = t.as_ref().len();
        if i > start && size + len > max {
            frames.push(batch_frame(&txns[start..i]));
            (start, size) = (i, 3);
        }
        size += len;
    }
    if start < txns.len() {
        frames.push(batch_frame(&txns[start..]));
    }
    frames
}

/// Builds a `Txns` frame from encoded transactions (as split by
/// [`split_txns`] or stored in a log).
pub fn txns_frame<'a>(txns: impl ExactSizeIterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
    let len: usize = txns.clone().map(<[u8]>::len).sum();
    let mut w = Writer::with_capacity(len + 12);
    w.u8(PROTOCOL_VERSION);
    w.u8(tag::TXNS);
    w.varint(txns.len() as u64);
    for t in txns {
        w.raw(t);
    }
    w.into_vec()
}

/// Reads only the clock of an encoded [`Snapshot`], without decoding its
/// objects.
pub fn snapshot_clock(bytes: &[u8]) -> Result<VectorClock, DecodeError> {
    let mut r = Reader::new(bytes);
    crate::version::check_stored_version(r.u8()?)?;
    VectorClock::decode(&mut r)
}

/// The tag byte of a `Txns` frame (after the version byte).
pub const TXNS_TAG: u8 = tag::TXNS;

/// The tag byte of a `Run` frame (after the version byte).
pub const RUN_TAG: u8 = tag::RUN;

/// The tag byte of a packed (LZ4) `Run` frame.
pub const PACKED_RUN_TAG: u8 = tag::PACKED_RUN;

/// The transactions of a `Txns` or `Run` frame, each as its own bytes:
/// borrowed from a `Txns` frame, rebuilt from a `Run`.
pub fn frame_txns(frame: &[u8]) -> Result<Vec<std::borrow::Cow<'_, [u8]>>, DecodeError> {
    if is_run(frame) {
        return Ok(split_run(frame)?
            .into_iter()
            .map(std::borrow::Cow::Owned)
            .collect());
    }
    Ok(split_txns(frame)?
        .into_iter()
        .map(std::borrow::Cow::Borrowed)
        .collect())
}

/// A batch of transactions as one frame: a `Run` when it has at least
/// [`RUN_MIN_TXNS`] and re-encodes byte for byte, else `Txns`.
pub fn batch_frame<T: AsRef<[u8]>>(txns: &[T]) -> Vec<u8> {
    if txns.len() >= RUN_MIN_TXNS {
        if let Some(f) = run_frame(txns) {
            return f;
        }
    }
    txns_frame(txns.iter().map(AsRef::as_ref))
}

/// The tag byte of a `Hello` frame (after the version byte).
pub const HELLO_TAG: u8 = tag::HELLO;

/// The tag byte of a `Snapshot` frame (after the version byte).
pub const SNAPSHOT_TAG: u8 = tag::SNAPSHOT;

/// The tag byte of a `SnapshotPart` frame (after the version byte).
pub const SNAPSHOT_PART_TAG: u8 = tag::SNAPSHOT_PART;

/// Bytes of a `SnapshotPart` frame besides its piece: version, tag, id and
/// two varints.
pub const SNAPSHOT_PART_OVERHEAD: usize = 2 + 8 + 10 + 10;

/// The frames that carry the [`Snapshot`] encoding `state` with none larger
/// than `max_frame` bytes: one `Snapshot` frame if it fits, else
/// `SnapshotPart` frames.
pub fn snapshot_frames(state: &[u8], max_frame: usize) -> Vec<Vec<u8>> {
    if state.len() + 2 <= max_frame {
        let mut f = Vec::with_capacity(state.len() + 2);
        f.push(crate::PROTOCOL_VERSION);
        f.push(tag::SNAPSHOT);
        f.extend_from_slice(state);
        return vec![f];
    }
    let id = snapshot_id(state);
    snapshot_parts(state.len(), max_frame)
        .map(|(offset, end)| snapshot_part_frame(id, state.len(), offset, &state[offset..end]))
        .collect()
}

/// The name of a snapshot encoding in its `SnapshotPart` frames: a hash of
/// its size and its clock. A replica's state is a function of the
/// transactions it delivered, so two snapshots with one clock are one
/// state, and resending it names it the same (pieces of both resends can
/// complete it).
pub fn snapshot_id(state: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut r = Reader::new(state);
    let clock_end = match r.u8().and_then(|_| VectorClock::skip(&mut r)) {
        Ok(()) => r.position(),
        Err(_) => state.len(),
    };
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x736e_6170, 0x7368_6f74);
    h.write_usize(state.len());
    h.write(&state[..clock_end]);
    h.finish()
}

/// The `(start, end)` ranges of a `total`-byte snapshot's pieces, each of
/// which fits a frame of `max_frame` bytes.
pub fn snapshot_parts(total: usize, max_frame: usize) -> impl Iterator<Item = (usize, usize)> {
    let step = max_frame
        .saturating_sub(SNAPSHOT_PART_OVERHEAD)
        .max(MIN_PIECE);
    (0..total)
        .step_by(step)
        .map(move |o| (o, (o + step).min(total)))
}

/// One `SnapshotPart` frame: `piece` starts at `offset` of `total` bytes of
/// snapshot `id`.
pub fn snapshot_part_frame(id: u64, total: usize, offset: usize, piece: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(piece.len() + SNAPSHOT_PART_OVERHEAD);
    w.u8(crate::PROTOCOL_VERSION);
    w.u8(tag::SNAPSHOT_PART);
    w.u64_le(id);
    w.varint(total as u64);
    w.varint(offset as u64);
    w.raw(piece);
    w.into_vec()
}

/// The smallest `SnapshotPart` piece but a snapshot's last (senders cut
/// pieces of nearly a frame).
pub const MIN_PIECE: usize = 512;

/// Puts a snapshot sent in `SnapshotPart` frames back together as its
/// pieces arrive, in any order and with duplicates, up to a limit on the
/// whole: what it holds grows with the bytes received, never by what a peer
/// declares. One snapshot at a time: a piece of another one starts over.
#[derive(Debug, Default)]
pub struct SnapshotAssembler {
    id: u64,
    total: u64,
    held: u64,
    pieces: std::collections::BTreeMap<u64, Vec<u8>>,
}

impl SnapshotAssembler {
    /// Adds one piece; returns the whole snapshot encoding once every byte
    /// arrived. A `total` over `limit`, or a piece that overlaps another of
    /// the same snapshot without being a copy of it, is an error.
    pub fn push(
        &mut self,
        id: u64,
        total: u64,
        offset: u64,
        bytes: &[u8],
        limit: usize,
    ) -> Result<Option<Vec<u8>>, DecodeError> {
        if total > limit as u64 {
            return Err(DecodeError::LengthOutOfRange {
                len: total,
                limit: limit as u64,
            });
        }
        let end = offset
            .checked_add(bytes.len() as u64)
            .filter(|e| *e <= total && !bytes.is_empty())
            .ok_or(DecodeError::NonCanonical(
                "snapshot part outside its snapshot",
            ))?;
        if self.pieces.is_empty() || id != self.id || total != self.total {
            *self = SnapshotAssembler {
                id,
                total,
                ..Default::default()
            };
        }
        // Pieces are at least `MIN_PIECE` bytes (but the last), so what the
        // pieces themselves cost stays a small part of the limit.
        if bytes.len() < MIN_PIECE && end != total {
            return Err(DecodeError::NonCanonical("snapshot part too small"));
        }
        if let Some(p) = self.pieces.get(&offset) {
            if p[..] == bytes[..] {
                return Ok(None);
            }
            return Err(DecodeError::NonCanonical(
                "snapshot part differs from an earlier copy",
            ));
        }
        let before = self.pieces.range(..offset).next_back();
        let after = self.pieces.range(offset..).next();
        if before.is_some_and(|(o, p)| o + p.len() as u64 > offset)
            || after.is_some_and(|(o, _)| *o < end)
        {
            return Err(DecodeError::NonCanonical("snapshot parts overlap"));
        }
        self.pieces.insert(offset, bytes.to_vec());
        self.held += bytes.len() as u64;
        if self.held < self.total {
            return Ok(None);
        }
        let mut whole = Vec::with_capacity(self.total as usize);
        for p in std::mem::take(&mut self.pieces).into_values() {
            whole.extend_from_slice(&p);
        }
        *self = SnapshotAssembler::default();
        Ok(Some(whole))
    }

    /// Bytes held for a snapshot not yet complete.
    pub fn held(&self) -> usize {
        self.held as usize
    }
}

/// A transaction's header: enough to route, deduplicate, order and store it
/// without understanding any CRDT.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TxnHeader {
    /// The replica that made it.
    pub origin: ReplicaId,
    /// Its seq at that replica.
    pub seq: u64,
    /// Dependencies: for each other replica, the seq that must be delivered
    /// first. Implicitly also `(origin, seq - 1)`. Sparse: entries the
    /// previous transaction of `origin` already implied may be left out.
    pub deps: VectorClock,
    /// Length of the effects blob that follows the header.
    pub effects_len: usize,
}

impl TxnHeader {
    /// Reads a header and skips the effects blob (without decoding it).
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<TxnHeader, DecodeError> {
        let origin = ReplicaId(r.u64_le()?);
        let seq = r.varint()?;
        if seq == 0 {
            return Err(DecodeError::NonCanonical("transaction seq 0"));
        }
        let deps = VectorClock::decode(r)?;
        let effects_len = r.len(r.remaining())?;
        r.take(effects_len)?;
        Ok(TxnHeader {
            origin,
            seq,
            deps,
            effects_len,
        })
    }

    /// Reads the header of one whole encoded transaction.
    pub fn parse(bytes: &[u8]) -> Result<TxnHeader, DecodeError> {
        let mut r = Reader::new(bytes);
        let h = Self::decode(&mut r)?;
        r.finish()?;
        Ok(h)
    }
}

/// A decoded transaction.
#[derive(Clone, PartialEq, Debug)]
pub struct Txn {
    /// The replica that made it.
    pub origin: ReplicaId,
    /// Its seq at that replica.
    pub seq: u64,
    /// Dependencies: the declared sparse deps (see [`TxnHeader::deps`])
    /// joined, on decode, with every dot the effects observe (DESIGN.md
    /// §2.7: a transaction is deliverable only once the receiver has every
    /// dot it removes, whatever its declared deps say). Encoding writes this
    /// clock as the deps, so re-encoding a decoded transaction may list
    /// more than its writer did; replicas store and forward the original
    /// bytes.
    pub deps: VectorClock,
    /// Per-key effects, at most one per key, in key order of first update.
    pub effects: Vec<(Key, Effect)>,
}

impl Txn {
    /// Encodes the transaction.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(32);
        self.encode_into(&mut w);
        w.into_vec()
    }

    /// Appends the encoding to `w`.
    pub(crate) fn encode_into(&self, w: &mut Writer) {
        let refs: Vec<(&Key, &Effect)> = self.effects.iter().map(|(k, e)| (k, e)).collect();
        encode_txn(w, self.origin, self.seq, &self.deps, &refs);
    }

    /// Decodes a whole transaction, effects included.
    pub fn decode(bytes: &[u8]) -> Result<Txn, DecodeError> {
        Self::decode_with(bytes, &mut |s| std::sync::Arc::from(s))
    }

    /// Decodes a whole transaction, making key strings with `intern` (see
    /// [`Key::decode_with`]).
    pub fn decode_with(
        bytes: &[u8],
        intern: &mut dyn FnMut(&str) -> std::sync::Arc<str>,
    ) -> Result<Txn, DecodeError> {
        let mut r = Reader::new(bytes);
        let origin = ReplicaId(r.u64_le()?);
        let seq = r.varint()?;
        if seq == 0 {
            return Err(DecodeError::NonCanonical("transaction seq 0"));
        }
        let deps = VectorClock::decode(&mut r)?;
        let effects_len = r.len(r.remaining())?;
        let mut er = Reader::new(r.take(effects_len)?);
        r.finish()?;
        let n = er.count(3)?;
        let mut effects: Vec<(Key, Effect)> = Vec::with_capacity(crate::codec::reserve(n));
        for _ in 0..n {
            let k = Key::decode_with(&mut er, intern)?;
            let e = Effect::decode(k.ty, &mut er)?;
            if e.is_field_only() {
                return Err(DecodeError::Inconsistent(
                    "a reset of an object whose type has none (only a map field can be reset)",
                ));
            }
            effects.push((k, e));
        }
        er.finish()?;
        let deps = causal_deps(origin, seq, deps, &effects)?;
        if effects.len() > 1 {
            let mut keys: Vec<&Key> = effects.iter().map(|(k, _)| k).collect();
            keys.sort_unstable();
            if keys.windows(2).any(|w| w[0] == w[1]) {
                return Err(DecodeError::NonCanonical("two effects on one key"));
            }
        }
        Ok(Txn {
            origin,
            seq,
            deps,
            effects,
        })
    }
}

/// The declared deps joined with every dot the effects observe. An effect
/// that observes a dot of its own origin at or after its own seq is
/// refused: no honest replica can have seen its own future.
fn causal_deps(
    origin: ReplicaId,
    seq: u64,
    mut deps: VectorClock,
    effects: &[(Key, Effect)],
) -> Result<VectorClock, DecodeError> {
    let mut bad = false;
    let mut extra: Vec<(ReplicaId, u64)> = Vec::new();
    for (_, e) in effects {
        e.for_each_observed(|d| {
            if d.replica == origin {
                bad |= d.seq >= seq;
            } else if deps.get(d.replica) < d.seq {
                extra.push((d.replica, d.seq));
            }
        });
    }
    if bad {
        return Err(DecodeError::Inconsistent(
            "an effect observes a dot of its own transaction or a later one of its origin",
        ));
    }
    if extra.is_empty() {
        return Ok(deps);
    }
    // Sorted, the highest seq per replica is the last of its run: one merge,
    // however many replicas the effects observe (a search per dot would be
    // quadratic, and a hostile frame can name 100,000 of them).
    extra.sort_unstable();
    let mut top: Vec<(ReplicaId, u64)> = Vec::with_capacity(extra.len());
    for (r, s) in extra {
        match top.last_mut() {
            Some((lr, ls)) if *lr == r => *ls = s,
            _ => top.push((r, s)),
        }
    }
    deps.merge(&top.into_iter().collect());
    Ok(deps)
}

/// Appends one transaction's encoding from its parts (the replica encodes
/// without building a [`Txn`]); returns the length of its effects blob.
pub(crate) fn encode_txn(
    w: &mut Writer,
    origin: ReplicaId,
    seq: u64,
    deps: &VectorClock,
    effects: &[(&Key, &Effect)],
) -> usize {
    w.u64_le(origin.0);
    w.varint(seq);
    deps.encode(w);
    // The effects blob is length-prefixed. Write it after a one-byte
    // placeholder and patch, moving the blob only if the length needs more
    // than one varint byte.
    let at = w.len();
    w.u8(0);
    let start = w.len();
    w.varint(effects.len() as u64);
    for (k, e) in effects {
        k.encode(w);
        e.encode(w);
    }
    let len = w.len() - start;
    let buf = w.buf_mut();
    if len < 0x80 {
        buf[at] = len as u8;
    } else {
        let mut prefix = Writer::new();
        prefix.varint(len as u64);
        let prefix = prefix.into_vec();
        buf.splice(at..at + 1, prefix);
    }
    len
}

/// One transaction's bytes (as [`Txn::encode`], from borrowed parts): what
/// a transport or a test that forges transactions sends.
pub fn encode_txn_bytes(
    origin: ReplicaId,
    seq: u64,
    deps: &VectorClock,
    effects: &[(&Key, &Effect)],
) -> Vec<u8> {
    let mut w = Writer::new();
    encode_txn(&mut w, origin, seq, deps, effects);
    w.into_vec()
}

/// A full replica state with its clock: what a snapshot record stores and a
/// `Snapshot` frame carries. Objects are encoded in key order, so equal
/// states have equal bytes.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Snapshot {
    /// Everything the state includes.
    pub clock: VectorClock,
    /// The non-bottom objects, sorted by key.
    pub objects: Vec<(Key, State)>,
}

impl Snapshot {
    /// Encodes: version byte, clock, object count, then `(key, state)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + 32 * self.objects.len());
        w.u8(PROTOCOL_VERSION);
        self.clock.encode(&mut w);
        w.varint(self.objects.len() as u64);
        for (k, s) in &self.objects {
            k.encode(&mut w);
            s.encode(&mut w);
        }
        w.into_vec()
    }

    /// Decodes and validates a snapshot.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
        let mut r = Reader::new(bytes);
        crate::version::check_stored_version(r.u8()?)?;
        let clock = VectorClock::decode(&mut r)?;
        let n = r.count(4)?;
        let mut objects: Vec<(Key, State)> = Vec::with_capacity(crate::codec::reserve(n));
        for _ in 0..n {
            let k = Key::decode(&mut r)?;
            let s = State::decode(k.ty, &mut r)?;
            if objects.last().is_some_and(|(p, _)| *p >= k) {
                return Err(DecodeError::NonCanonical(
                    "snapshot keys not strictly sorted",
                ));
            }
            objects.push((k, s));
        }
        r.finish()?;
        Ok(Snapshot { clock, objects })
    }
}
