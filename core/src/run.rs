//! `Run` frames: a batch of transactions in columns (PROTOCOL.md, "Run").
//!
//! A catch-up ships thousands of transactions; as `Txns` each repeats its
//! origin (8 bytes), its seq, its deps and its key in full. A `Run` names
//! each origin and each key once in tables, gives each transaction a head
//! that says "the next seq of this origin, no new deps" in one byte, and
//! groups the effect bodies by object (all bodies of one key together, in
//! transaction order), so similar bodies sit side by side.
//!
//! A `Run` is a re-encoding, not a new format for transactions: it decodes
//! back to exactly the bytes of each transaction, which is what logs store,
//! peers compare (one dot, one byte string) and the replica applies. The
//! encoder checks that every transaction comes back byte for byte and
//! falls back to `Txns` otherwise.
//!
//! ```text
//! Run   = u8 version, u8 tag (9)
//!         varint origins, origins × u64 ReplicaId
//!         varint keys, keys × Key
//!         varint count, count × Head
//!         bodies: for each key in table order, its bodies in transaction
//!                 order, each `varint len, len bytes`
//! Head  = varint (origin index << 2 | kind), then by kind:
//!         0: one effect, the origin's next seq, empty deps, the same key as
//!            the origin's previous one-effect transaction in this run
//!         3: one effect, the origin's next seq, empty deps: varint key index
//!         1: one effect: varint seq, Clock deps, varint key index
//!         2: any effects: varint seq, Clock deps, varint len, the effects blob
//! ```
//!
//! A run of single writes to one object costs 4 bytes a transaction: the
//! head, the body's length and a 2-byte body.
//!
//! A run whose body compresses by a tenth or more goes packed (tag 10):
//! `varint len`, then the body as one LZ4 block (`lz4_flex`) of exactly
//! `len` bytes.
//!
//! Decoding is bounded before anything is allocated: the tables by the
//! frame's length, and the transactions it expands to (and a packed body)
//! by [`MAX_EXPANSION`] times the frame's length on the wire.

use crate::clock::VectorClock;
use crate::codec::{Codec, Reader, Writer};
use crate::error::DecodeError;
use crate::key::Key;
use crate::version::{check_version, PROTOCOL_VERSION};

/// The tag of a `Run` frame.
pub(crate) const RUN_TAG: u8 = 9;
/// The tag of a `Run` frame whose body is one LZ4 block.
pub(crate) const PACKED_RUN_TAG: u8 = 10;

/// Whether a frame is a `Run`, packed or not.
pub fn is_run(frame: &[u8]) -> bool {
    matches!(frame.get(1), Some(&RUN_TAG | &PACKED_RUN_TAG))
}

/// A `Run` frame expands to at most this many times its length.
pub const MAX_EXPANSION: usize = 32;

/// The largest packed body (LZ4 lengths are summed in a `u32` by the
/// decoder; a frame is far below this anyway).
const MAX_PACKED: usize = 16 << 20;

/// Batches of fewer transactions go as `Txns` (a live write stays small).
pub const RUN_MIN_TXNS: usize = 8;

const KIND_SAME: u64 = 0;
const KIND_ONE: u64 = 1;
const KIND_RAW: u64 = 2;
const KIND_NEXT: u64 = 3;

/// The parts of one transaction's bytes.
struct Parts<'a> {
    origin: u64,
    seq: u64,
    /// The deps' encoding, as written.
    deps: &'a [u8],
    /// The effects blob, as written.
    blob: &'a [u8],
    /// With exactly one effect: its key's encoding and its body.
    one: Option<(&'a [u8], &'a [u8])>,
}

fn parts(t: &[u8]) -> Result<Parts<'_>, DecodeError> {
    let mut r = Reader::new(t);
    let origin = r.u64_le()?;
    let seq = r.varint()?;
    let d0 = r.position();
    VectorClock::skip(&mut r)?;
    let deps = &t[d0..r.position()];
    let len = r.len(r.remaining())?;
    let blob = r.take(len)?;
    r.finish()?;
    let mut b = Reader::new(blob);
    let one = if b.varint()? == 1 {
        let k0 = b.position();
        Key::decode(&mut b)?;
        let k1 = b.position();
        Some((&blob[k0..k1], &blob[k1..]))
    } else {
        None
    };
    Ok(Parts {
        origin,
        seq,
        deps,
        blob,
        one,
    })
}

fn put_txn(w: &mut Writer, origin: u64, seq: u64, deps: &[u8], blob_parts: &[&[u8]]) {
    w.u64_le(origin);
    w.varint(seq);
    w.raw(deps);
    w.varint(blob_parts.iter().map(|p| p.len() as u64).sum());
    for p in blob_parts {
        w.raw(p);
    }
}

/// The bytes of a one-effect transaction's blob before its key: the
/// effect count 1.
const ONE: &[u8] = &[1];

/// Encodes `txns` as one `Run` frame; `None` if some transaction does not
/// come back byte for byte from its parts (send those as `Txns`).
pub fn run_frame<T: AsRef<[u8]>>(txns: &[T]) -> Option<Vec<u8>> {
    let mut origins: Vec<u64> = Vec::new();
    let mut keys: Vec<&[u8]> = Vec::new();
    // Table lookups in O(log n): a batch of 50,000 writes to 50,000 keys
    // must not cost a scan per write.
    let mut origin_at: std::collections::BTreeMap<u64, usize> = Default::default();
    let mut key_at: std::collections::BTreeMap<&[u8], usize> = Default::default();
    let mut heads = Writer::new();
    let mut last_seq: Vec<u64> = Vec::new();
    // Per origin, the key of its previous one-effect transaction.
    let mut last_key: Vec<Option<usize>> = Vec::new();
    // Per key, its bodies in transaction order.
    let mut bodies: Vec<Vec<&[u8]>> = Vec::new();
    let mut raw_len = 0usize;
    for t in txns {
        let t = t.as_ref();
        raw_len += t.len();
        let p = parts(t).ok()?;
        let oi = match origin_at.get(&p.origin) {
            Some(&i) => i,
            None => {
                if origins.len() == MAX_TABLE {
                    return None;
                }
                origin_at.insert(p.origin, origins.len());
                origins.push(p.origin);
                last_seq.push(0);
                last_key.push(None);
                origins.len() - 1
            }
        };
        // The parts must give the same bytes back.
        let mut check = Writer::with_capacity(t.len());
        match p.one {
            Some((k, b)) => put_txn(&mut check, p.origin, p.seq, p.deps, &[ONE, k, b]),
            None => put_txn(&mut check, p.origin, p.seq, p.deps, &[p.blob]),
        }
        if check.as_slice() != t {
            return None;
        }
        let next = last_seq[oi].checked_add(1) == Some(p.seq) && p.deps == [0];
        last_seq[oi] = p.seq;
        match p.one {
            Some((k, b)) => {
                let ki = match key_at.get(k) {
                    Some(&i) => i,
                    None => {
                        if keys.len() == MAX_TABLE {
                            return None;
                        }
                        key_at.insert(k, keys.len());
                        keys.push(k);
                        bodies.push(Vec::new());
                        keys.len() - 1
                    }
                };
                if next && last_key[oi] == Some(ki) {
                    heads.varint((oi as u64) << 2 | KIND_SAME);
                } else if next {
                    heads.varint((oi as u64) << 2 | KIND_NEXT);
                    heads.varint(ki as u64);
                } else {
                    heads.varint((oi as u64) << 2 | KIND_ONE);
                    heads.varint(p.seq);
                    heads.raw(p.deps);
                    heads.varint(ki as u64);
                }
                last_key[oi] = Some(ki);
                bodies[ki].push(b);
            }
            None => {
                heads.varint((oi as u64) << 2 | KIND_RAW);
                heads.varint(p.seq);
                heads.raw(p.deps);
                heads.varint(p.blob.len() as u64);
                heads.raw(p.blob);
            }
        }
    }
    let mut w = Writer::with_capacity(raw_len / 2 + 64);
    w.u8(PROTOCOL_VERSION);
    w.u8(RUN_TAG);
    w.varint(origins.len() as u64);
    for o in &origins {
        w.u64_le(*o);
    }
    w.varint(keys.len() as u64);
    for k in &keys {
        w.raw(k);
    }
    w.varint(txns.len() as u64);
    w.raw(heads.as_slice());
    for column in &bodies {
        for b in column {
            w.varint(b.len() as u64);
            w.raw(b);
        }
    }
    let out = w.into_vec();
    // Never larger than the `Txns` frame it replaces (frames are packed up
    // to a size limit by `txns_frames`).
    if out.len() > raw_len + 2 + varint_len(txns.len() as u64) {
        return None;
    }
    // What a receiver accepts (the same count as `split_body`'s).
    let fits = |f: &[u8]| raw_len <= f.len().saturating_mul(MAX_EXPANSION);
    // Packed when it pays: the body as one LZ4 block, whose own length the
    // receiver holds to the same bound.
    let packed = lz4_flex::block::compress(&out[2..]);
    if packed.len() + 10 < (out.len() - 2) * 9 / 10
        && packed.len() < MAX_PACKED
        && out.len() - 2 <= (packed.len() + 12).saturating_mul(MAX_EXPANSION)
    {
        let mut p = Writer::with_capacity(packed.len() + 12);
        p.u8(PROTOCOL_VERSION);
        p.u8(PACKED_RUN_TAG);
        p.varint((out.len() - 2) as u64);
        p.raw(&packed);
        let p = p.into_vec();
        if fits(&p) {
            return Some(p);
        }
    }
    // A run that would expand past that goes as `Txns`.
    fits(&out).then_some(out)
}

/// The bytes of `v` as a varint.
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The transactions of a `Run` frame, each as its own bytes (what a `Txns`
/// frame would carry). Only the framing is checked here; each transaction
/// is validated in full when it is decoded.
pub fn split_run(frame: &[u8]) -> Result<Vec<Vec<u8>>, DecodeError> {
    let mut r = Reader::new(frame);
    check_version(r.u8()?)?;
    let limit = frame.len().saturating_mul(MAX_EXPANSION);
    match r.u8()? {
        RUN_TAG => split_body(&frame[2..], limit),
        PACKED_RUN_TAG => {
            let len = r.len(limit)?;
            // Bounded first: the LZ4 decoder sums length bytes in a u32.
            if frame.len() - r.position() >= MAX_PACKED {
                return Err(DecodeError::LengthOutOfRange {
                    len: (frame.len() - r.position()) as u64,
                    limit: MAX_PACKED as u64,
                });
            }
            let mut body = vec![0u8; len];
            let n = lz4_flex::block::decompress_into(&frame[r.position()..], &mut body).map_err(
                |_| DecodeError::NonCanonical("Run: the packed body does not decompress"),
            )?;
            if n != len {
                return Err(DecodeError::NonCanonical(
                    "Run: the packed body is not the length it says",
                ));
            }
            split_body(&body, limit)
        }
        t => Err(DecodeError::InvalidTag {
            what: "Run frame",
            tag: t,
        }),
    }
}

/// A head as read: the origin's index, seq, deps, and the key index or the
/// raw effects blob.
struct Head<'a> {
    oi: usize,
    seq: u64,
    deps: &'a [u8],
    key: Option<usize>,
    raw: &'a [u8],
}

/// Reads the heads from `r`, calling `f` with each; the per-origin state
/// (previous seq and key) is the format's, so both passes agree.
fn read_heads<'a>(
    r: &mut Reader<'a>,
    frame: &'a [u8],
    count: usize,
    origins: usize,
    keys: usize,
    mut f: impl FnMut(&Head<'a>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut last_seq = vec![0u64; origins];
    let mut last_key: Vec<Option<usize>> = vec![None; origins];
    let max_key = keys.saturating_sub(1);
    for _ in 0..count {
        let h = r.varint()?;
        let oi = usize::try_from(h >> 2).unwrap_or(usize::MAX);
        if oi >= origins {
            return Err(DecodeError::LengthOutOfRange {
                len: h >> 2,
                limit: origins as u64,
            });
        }
        let head = match h & 3 {
            KIND_SAME | KIND_NEXT => {
                let seq = last_seq[oi]
                    .checked_add(1)
                    .ok_or(DecodeError::VarintOverflow)?;
                let k = if h & 3 == KIND_SAME {
                    last_key[oi].ok_or(DecodeError::NonCanonical(
                        "Run: the same key as a previous transaction that has none",
                    ))?
                } else {
                    r.len(max_key)?
                };
                Head {
                    oi,
                    seq,
                    deps: &[0],
                    key: Some(k),
                    raw: &[],
                }
            }
            kind => {
                let seq = r.varint()?;
                let d0 = r.position();
                VectorClock::skip(r)?;
                let deps = &frame[d0..r.position()];
                if kind == KIND_ONE {
                    Head {
                        oi,
                        seq,
                        deps,
                        key: Some(r.len(max_key)?),
                        raw: &[],
                    }
                } else {
                    let len = r.len(r.remaining())?;
                    Head {
                        oi,
                        seq,
                        deps,
                        key: None,
                        raw: r.take(len)?,
                    }
                }
            }
        };
        if head.key.is_some() && keys == 0 {
            return Err(DecodeError::LengthOutOfRange { len: 0, limit: 0 });
        }
        last_seq[oi] = head.seq;
        if head.key.is_some() {
            last_key[oi] = head.key;
        }
        f(&head)?;
    }
    Ok(())
}

/// Most origins, and most keys, one run names (a batch with more goes as
/// `Txns`): the decoder's tables stay small whatever a frame claims.
pub const MAX_TABLE: usize = 65_536;

/// A run's body (after version and tag); `limit` bounds what it expands
/// to. Two passes over the heads, so nothing per transaction is held but
/// the output, which is counted, byte for byte, before it is built.
fn split_body(frame: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, DecodeError> {
    let too_long = |total: usize| {
        (total > limit).then_some(DecodeError::LengthOutOfRange {
            len: total as u64,
            limit: limit as u64,
        })
    };
    let mut r = Reader::new(frame);
    // A table count is held to what the input can hold and to MAX_TABLE.
    let n = r.len(MAX_TABLE.min(r.remaining() / 8))?;
    let mut origins = Vec::with_capacity(n);
    for _ in 0..n {
        origins.push(r.u64_le()?);
    }
    let n = r.len(MAX_TABLE.min(r.remaining() / 3))?;
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        let k0 = r.position();
        Key::decode(&mut r)?;
        keys.push(&frame[k0..r.position()]);
    }
    let count = r.count(2)?;
    // Pass 1: what each key's column holds, and the size of everything
    // but the bodies.
    let heads_at = r.position();
    let mut per_key = vec![0usize; keys.len()];
    let mut total = 0usize;
    read_heads(&mut r, frame, count, origins.len(), keys.len(), |h| {
        total = total.saturating_add(8 + varint_len(h.seq) + h.deps.len());
        match h.key {
            Some(k) => per_key[k] += 1,
            None => {
                total = total.saturating_add(varint_len(h.raw.len() as u64) + h.raw.len());
            }
        }
        too_long(total).map_or(Ok(()), Err)
    })?;
    // The bodies: where each column starts, and their sizes.
    let mut columns = Vec::with_capacity(keys.len());
    for (k, &n) in per_key.iter().enumerate() {
        columns.push(r.position());
        for _ in 0..n {
            let len = r.len(r.remaining())?;
            r.take(len)?;
            let blob = 1 + keys[k].len() + len;
            total = total.saturating_add(varint_len(blob as u64) + blob);
            if let Some(e) = too_long(total) {
                return Err(e);
            }
        }
    }
    r.finish()?;
    // Pass 2: build each transaction, taking bodies from their columns.
    let mut cursors: Vec<Reader<'_>> = columns
        .iter()
        .map(|&at| {
            let mut c = Reader::new(frame);
            let _ = c.take(at);
            c
        })
        .collect();
    let mut out = Vec::with_capacity(count);
    let mut h = Reader::new(frame);
    h.take(heads_at)?;
    read_heads(&mut h, frame, count, origins.len(), keys.len(), |head| {
        let mut w = Writer::new();
        let origin = origins[head.oi];
        match head.key {
            Some(k) => {
                let c = &mut cursors[k];
                let len = c.len(c.remaining())?;
                let body = c.take(len)?;
                put_txn(&mut w, origin, head.seq, head.deps, &[ONE, keys[k], body]);
            }
            None => put_txn(&mut w, origin, head.seq, head.deps, &[head.raw]),
        }
        out.push(w.into_vec());
        Ok(())
    })?;
    Ok(out)
}
