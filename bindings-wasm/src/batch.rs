//! The call buffer: how `index.js` hands a whole batch of updates (or keys)
//! to the `Core` in one crossing, and how values come back.
//!
//! Crossing the JS↔wasm boundary costs more than most of the work a call
//! does: reading a JS array element by element from Rust is one boundary
//! call per element, and a string is two. So `index.js` (`js/codec.js`)
//! writes the batch into one `Uint8Array`, which wasm-bindgen copies into
//! linear memory with one `memcpy`, and values come back the same way.
//! This format is private to the package: both ends ship together, it is
//! never stored or sent to a peer, and a bad buffer is refused with an
//! error, never a panic.
//!
//! ```text
//! call    := gen:u32le (updates | keys)
//! updates := update*
//! update  := flags:u8 key? op? value?
//!   flags & SAME_KEY: the previous update's key; else a key follows:
//!   flags & KEY_ID:   id:u32le, a key registered before (see below)
//!   flags & KEY_NEW:  id:u32le key, registering it as `id`
//!   neither:          key
//!   flags & SAME_OP:  the previous update's op name; else str follows
//!   flags & HAS_ARG:  a value follows
//!   flags == SAME_UPDATE: the previous update again (nothing follows)
//! keys    := (flags:u8 key?)*          (SAME_KEY, KEY_ID, KEY_NEW as above)
//! key     := str name, str type, str bucket   (cached by these bytes)
//! str     := len:u32le utf8
//! value   := NULL | FALSE | TRUE | INT53 f64le | FLOAT f64le | INT64 i64le
//!          | STR str | BYTES len:u32le bytes | LIST n:u32le value*
//!          | MAP n:u32le (str value)*
//! ```
//!
//! Key ids: apps keep their key arrays and pass the same ones again, so
//! `codec.js` numbers each key array it meets (in a WeakMap, checked
//! against the array's current strings) and sends the number after the
//! first time. The ids form one table for the module (every `Core`), under
//! a generation: when `codec.js` has handed out [`MAX_IDS`] it starts a
//! new generation, and a call with a new `gen` clears the table here. A
//! call that fails makes `codec.js` forget the ids it registered in it, so
//! an id it sends always names a key decoded here.
//!
//! `INT53` is a JS number that is a safe integer (an int here); `FLOAT` any
//! other number; `INT64` a BigInt in range. Values out use the same tags,
//! with `INT53` for every int a JS number holds exactly.

use std::collections::BTreeMap;

use minidote_core::{CrdtType, Key, Update, Value, MAX_DEPTH};

pub const SAME_KEY: u8 = 1;
pub const SAME_OP: u8 = 2;
pub const HAS_ARG: u8 = 4;
pub const SAME_UPDATE: u8 = 8;
pub const KEY_ID: u8 = 16;
pub const KEY_NEW: u8 = 32;

/// Ids per generation (js/codec.js holds the same number).
pub const MAX_IDS: usize = 65_536;

thread_local! {
    /// The module's key ids: the generation, and the key of each id.
    static IDS: std::cell::RefCell<(u32, Vec<Option<Key>>)> =
        const { std::cell::RefCell::new((0, Vec::new())) };
}

/// Reads a call's generation, clearing the id table when it is new.
fn generation(r: &mut In<'_>) -> Result<(), String> {
    let g = r.u32()? as u32;
    IDS.with(|t| {
        let mut t = t.borrow_mut();
        if t.0 != g {
            *t = (g, Vec::new());
        }
    });
    Ok(())
}

/// A key that is not "the same as the last": by id, new with an id, or in
/// full.
fn any_key(flags: u8, r: &mut In<'_>, cache: &mut KeyCache) -> Result<Key, String> {
    if flags & KEY_ID != 0 {
        let id = r.u32()?;
        return IDS
            .with(|t| t.borrow().1.get(id).cloned().flatten())
            .ok_or_else(|| format!("call buffer: unknown key id {id}"));
    }
    if flags & KEY_NEW != 0 {
        let id = r.u32()?;
        if id >= MAX_IDS {
            return Err(format!("call buffer: key id {id} out of range"));
        }
        let slot = |k: Option<Key>| {
            IDS.with(|t| {
                let mut t = t.borrow_mut();
                if t.1.len() <= id {
                    t.1.resize(id + 1, None);
                }
                t.1[id] = k;
            })
        };
        slot(None);
        let k = cache.key(r)?;
        slot(Some(k.clone()));
        return Ok(k);
    }
    cache.key(r)
}

pub const NULL: u8 = 0;
pub const FALSE: u8 = 1;
pub const TRUE: u8 = 2;
pub const INT53: u8 = 3;
pub const FLOAT: u8 = 4;
pub const INT64: u8 = 5;
pub const STR: u8 = 6;
pub const BYTES: u8 = 7;
pub const LIST: u8 = 8;
pub const MAP: u8 = 9;

/// Largest integer a JS number holds exactly (2^53 - 1).
const MAX_SAFE: i64 = 9_007_199_254_740_991;

/// Keys seen lately, by their encoded bytes: a batch over many keys, and
/// the next batch over the same keys, build each `Key` (a type lookup and
/// two shared strings) once. Bounded: when full it starts over.
pub struct KeyCache {
    map: foldhash::HashMap<Box<[u8]>, Key>,
}

/// Entries kept before the cache starts over (a few hundred KiB at most).
const KEY_CACHE_CAP: usize = 16_384;

impl KeyCache {
    pub fn new() -> Self {
        KeyCache {
            map: foldhash::HashMap::default(),
        }
    }

    fn key(&mut self, r: &mut In<'_>) -> Result<Key, String> {
        let start = r.p;
        let name = r.str()?;
        let ty = r.str()?;
        let bucket = r.str()?;
        let raw = &r.b[start..r.p];
        if let Some(k) = self.map.get(raw) {
            return Ok(k.clone());
        }
        let ty: CrdtType = ty
            .parse()
            .map_err(|e: minidote_core::UpdateError| e.to_string())?;
        let k = Key::new(name, ty, bucket);
        if self.map.len() >= KEY_CACHE_CAP {
            self.map.clear();
        }
        self.map.insert(raw.into(), k.clone());
        Ok(k)
    }
}

/// A reader over the call buffer: every read is checked.
pub struct In<'a> {
    b: &'a [u8],
    p: usize,
}

const SHORT: &str = "call buffer ends early";

impl<'a> In<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        In { b, p: 0 }
    }

    fn done(&self) -> bool {
        self.p >= self.b.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.p.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| SHORT.to_owned())?;
        let s = &self.b[self.p..end];
        self.p = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<usize, String> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    }

    fn eight(&mut self) -> Result<[u8; 8], String> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn str(&mut self) -> Result<&'a str, String> {
        let n = self.u32()?;
        std::str::from_utf8(self.take(n)?)
            .map_err(|_| "call buffer: a string is not UTF-8".to_owned())
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        let nested = || -> Result<usize, String> {
            if depth >= MAX_DEPTH {
                return Err(format!("value nested deeper than {MAX_DEPTH} levels"));
            }
            Ok(depth + 1)
        };
        Ok(match self.u8()? {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            INT53 => {
                let f = f64::from_le_bytes(self.eight()?);
                if f.fract() != 0.0 || f.abs() > MAX_SAFE as f64 {
                    return Err("call buffer: an INT53 that is not a safe integer".to_owned());
                }
                Value::Int(f as i64)
            }
            FLOAT => Value::Float(f64::from_le_bytes(self.eight()?)),
            INT64 => Value::Int(i64::from_le_bytes(self.eight()?)),
            STR => Value::Str(self.str()?.to_owned()),
            BYTES => {
                let n = self.u32()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            LIST => {
                let d = nested()?;
                let n = self.u32()?;
                // Each item takes at least one byte: a bogus count cannot
                // reserve more than the buffer holds.
                let mut out = Vec::with_capacity(n.min(self.b.len() - self.p));
                for _ in 0..n {
                    out.push(self.value(d)?);
                }
                Value::List(out)
            }
            MAP => {
                let d = nested()?;
                let n = self.u32()?;
                let mut out = BTreeMap::new();
                for _ in 0..n {
                    let k = self.str()?.to_owned();
                    let v = self.value(d)?;
                    out.insert(k, v);
                }
                Value::Map(out)
            }
            t => return Err(format!("call buffer: unknown value tag {t}")),
        })
    }
}

/// The updates of one `updateObjects` call.
pub fn updates(buf: &[u8], cache: &mut KeyCache) -> Result<Vec<Update>, String> {
    let mut r = In::new(buf);
    generation(&mut r)?;
    let mut out: Vec<Update> = Vec::new();
    let mut last_key: Option<Key> = None;
    let mut last_op: Option<&str> = None;
    let mut i = 0;
    while !r.done() {
        let flags = r.u8()?;
        if flags == SAME_UPDATE {
            let again = out.last().cloned();
            out.push(again.ok_or("call buffer: SAME_UPDATE on the first update")?);
            i += 1;
            continue;
        }
        let key = match (&last_key, flags & SAME_KEY != 0) {
            (Some(k), true) => k.clone(),
            (None, true) => return Err("call buffer: SAME_KEY on the first update".to_owned()),
            (_, false) => {
                let k = any_key(flags, &mut r, cache).map_err(|e| format!("update #{i}: {e}"))?;
                last_key = Some(k.clone());
                k
            }
        };
        let op = match (last_op, flags & SAME_OP != 0) {
            (Some(op), true) => op,
            (None, true) => return Err("call buffer: SAME_OP on the first update".to_owned()),
            (_, false) => {
                let op = r.str()?;
                last_op = Some(op);
                op
            }
        };
        let arg = if flags & HAS_ARG != 0 {
            Some(r.value(0).map_err(|e| format!("update #{i}: {e}"))?)
        } else {
            None
        };
        // List and text indexes count UTF-16 units here (`string.length`).
        let mut u = Update::parse(key, op, arg).map_err(|e| e.at(i).to_string())?;
        u.op = u.op.in_utf16();
        out.push(u);
        i += 1;
    }
    Ok(out)
}

/// The keys of one read.
pub fn keys(buf: &[u8], cache: &mut KeyCache) -> Result<Vec<Key>, String> {
    let mut r = In::new(buf);
    generation(&mut r)?;
    let mut out: Vec<Key> = Vec::new();
    while !r.done() {
        let flags = r.u8()?;
        let key = match out.last() {
            Some(k) if flags & SAME_KEY != 0 => k.clone(),
            _ => any_key(flags, &mut r, cache).map_err(|e| format!("key #{}: {e}", out.len()))?,
        };
        out.push(key);
    }
    Ok(out)
}

/// Appends `v` in the call buffer's value encoding.
pub fn put_value(out: &mut Vec<u8>, v: &Value) {
    let len = |out: &mut Vec<u8>, n: usize| out.extend_from_slice(&(n as u32).to_le_bytes());
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Int(i) if (-MAX_SAFE..=MAX_SAFE).contains(i) => {
            out.push(INT53);
            out.extend_from_slice(&(*i as f64).to_le_bytes());
        }
        Value::Int(i) => {
            out.push(INT64);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            out.push(FLOAT);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Str(s) => {
            out.push(STR);
            len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(BYTES);
            len(out, b.len());
            out.extend_from_slice(b);
        }
        Value::List(l) => {
            out.push(LIST);
            len(out, l.len());
            for x in l {
                put_value(out, x);
            }
        }
        Value::Map(m) => {
            out.push(MAP);
            len(out, m.len());
            for (k, x) in m {
                len(out, k.len());
                out.extend_from_slice(k.as_bytes());
                put_value(out, x);
            }
        }
    }
}

/// `values` as one buffer: `n:u32le value*`.
pub fn put_values(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 9 * values.len());
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values {
        put_value(&mut out, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(out: &mut Vec<u8>, x: &str) {
        out.extend_from_slice(&(x.len() as u32).to_le_bytes());
        out.extend_from_slice(x.as_bytes());
    }

    #[test]
    fn values_round_trip_and_bad_buffers_are_refused() {
        let v = Value::List(vec![
            Value::Int(3),
            Value::Int(i64::MIN),
            Value::Float(1.5),
            Value::from("hé"),
            Value::Bytes(vec![0, 255]),
            Value::Map(BTreeMap::from([("a".to_owned(), Value::Null)])),
            Value::Bool(true),
        ]);
        let mut b = Vec::new();
        put_value(&mut b, &v);
        assert_eq!(In::new(&b).value(0).unwrap(), v);
        // Every truncation is an error, not a panic.
        for n in 0..b.len() {
            assert!(In::new(&b[..n]).value(0).is_err(), "prefix {n}");
        }
        // A list claiming 4·10⁹ items reserves nothing it cannot read.
        let huge = [LIST, 255, 255, 255, 255];
        assert!(In::new(&huge).value(0).is_err());
        // Too deep.
        let deep: Vec<u8> = std::iter::repeat_n([LIST, 1, 0, 0, 0], MAX_DEPTH + 1)
            .flatten()
            .chain([NULL])
            .collect();
        assert!(In::new(&deep).value(0).unwrap_err().contains("deeper"));
    }

    #[test]
    fn updates_reuse_keys_and_ops() {
        let mut b = vec![0, 0, 0, 0, HAS_ARG];
        s(&mut b, "c");
        s(&mut b, "counter_pn");
        s(&mut b, "b");
        s(&mut b, "increment");
        b.push(INT53);
        b.extend_from_slice(&2f64.to_le_bytes());
        let first = b.len();
        b.push(SAME_KEY | SAME_OP | HAS_ARG);
        b.push(INT53);
        b.extend_from_slice(&3f64.to_le_bytes());
        b.push(SAME_UPDATE);
        let mut cache = KeyCache::new();
        let ups = updates(&b, &mut cache).unwrap();
        assert_eq!(ups.len(), 3);
        assert_eq!(ups[0].key, ups[1].key);
        assert_eq!(ups[1], ups[2]);
        assert!(updates(&[0, 0, 0, 0, SAME_KEY], &mut cache).is_err());
        assert!(updates(&[0, 0, 0, 0, SAME_UPDATE], &mut cache).is_err());
        // Cut inside the first update: an error, never a panic.
        for n in 0..first {
            assert!(
                updates(&b[..n], &mut cache).is_err() || n == 4,
                "prefix {n}"
            );
        }
    }

    #[test]
    fn key_ids_name_registered_keys_until_a_new_generation() {
        let mut b = vec![7, 0, 0, 0, KEY_NEW];
        b.extend_from_slice(&5u32.to_le_bytes());
        s(&mut b, "x");
        s(&mut b, "set_aw");
        s(&mut b, "b");
        let mut cache = KeyCache::new();
        let k = keys(&b, &mut cache).unwrap();
        let mut again = vec![7, 0, 0, 0, KEY_ID];
        again.extend_from_slice(&5u32.to_le_bytes());
        assert_eq!(keys(&again, &mut cache).unwrap(), k);
        // Another id, or the same in a new generation, names nothing.
        let mut other = again.clone();
        other[5] = 6;
        assert!(keys(&other, &mut cache)
            .unwrap_err()
            .contains("unknown key id"));
        again[0] = 8;
        assert!(keys(&again, &mut cache).is_err());
        // A key that fails to decode leaves its id empty.
        let mut bad = vec![8, 0, 0, 0, KEY_NEW];
        bad.extend_from_slice(&1u32.to_le_bytes());
        s(&mut bad, "x");
        s(&mut bad, "no_such_type");
        s(&mut bad, "b");
        assert!(keys(&bad, &mut cache).is_err());
        let mut by_id = vec![8, 0, 0, 0, KEY_ID];
        by_id.extend_from_slice(&1u32.to_le_bytes());
        assert!(keys(&by_id, &mut cache).is_err());
        let mut huge = vec![8, 0, 0, 0, KEY_NEW];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(keys(&huge, &mut cache).is_err());
    }
}
