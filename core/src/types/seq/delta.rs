//! Change deltas for subscribers: what a transaction did to a list or a
//! text, as Quill-style `retain` / `insert` / `delete` steps in document
//! order, so an editor can apply a remote edit without re-reading the
//! value. Counts come in both index units (code points and UTF-16 units;
//! list elements count one in both).

use crate::value::Value;

/// One edit as it applied: at visible index `at` (`at16` in UTF-16 units).
#[derive(Clone, PartialEq, Debug)]
pub enum SeqEdit {
    /// Inserted content (a string for text, a list of values for lists).
    Ins {
        /// Index in elements (code points).
        at: u64,
        /// Index in UTF-16 units.
        at16: u64,
        /// What.
        content: Value,
    },
    /// `n` elements (`n16` UTF-16 units) deleted.
    Del {
        /// Index in elements.
        at: u64,
        /// Index in UTF-16 units.
        at16: u64,
        /// Elements.
        n: u64,
        /// UTF-16 units.
        n16: u64,
    },
}

/// One step of a delta.
#[derive(Clone, PartialEq, Debug)]
pub enum DeltaOp {
    /// Keep `n` elements (`n16` UTF-16 units).
    Retain {
        /// Elements (code points).
        n: u64,
        /// UTF-16 units.
        n16: u64,
    },
    /// Insert content: a string for text, a list of values for lists.
    Insert(Value),
    /// Delete `n` elements (`n16` UTF-16 units).
    Delete {
        /// Elements (code points).
        n: u64,
        /// UTF-16 units.
        n16: u64,
    },
}

/// The width of inserted content in one unit.
fn width(v: &Value, u16: bool) -> u64 {
    match v {
        Value::Str(s) => {
            let (a, b) = super::chunk::counts(s);
            if u16 {
                b as u64
            } else {
                a as u64
            }
        }
        Value::List(l) => l.len() as u64,
        _ => 1,
    }
}

/// Splits content after `k` units (never inside a character: edits keep
/// UTF-16 indexes on character boundaries).
fn split(v: Value, k: u64, u16: bool) -> (Value, Value) {
    match v {
        Value::Str(mut s) => {
            let mut units = 0u64;
            let mut b = s.len();
            for (i, c) in s.char_indices() {
                if units >= k {
                    b = i;
                    break;
                }
                units += if u16 { c.len_utf16() as u64 } else { 1 };
            }
            let t = s.split_off(b);
            (Value::Str(s), Value::Str(t))
        }
        Value::List(mut l) => {
            let t = l.split_off((k as usize).min(l.len()));
            (Value::List(l), Value::List(t))
        }
        v => (v, Value::Null),
    }
}

fn concat(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x.push_str(&y),
        (Value::List(x), Value::List(y)) => x.extend(y),
        _ => {}
    }
}

/// One step, in one unit.
#[derive(Debug)]
enum Step {
    Retain(u64),
    Insert(Value),
    Delete(u64),
}

/// The delta of edits applied one after another (each index counts the
/// document as the edits before it left it). Worked out once per unit:
/// the two results have the same steps, with their own counts.
pub fn compose(edits: &[SeqEdit]) -> Vec<DeltaOp> {
    let cp = compose_in(edits, false);
    let u = compose_in(edits, true);
    debug_assert_eq!(cp.len(), u.len());
    cp.into_iter()
        .zip(u)
        .map(|(a, b)| match (a, b) {
            (Step::Retain(n), Step::Retain(n16)) => DeltaOp::Retain { n, n16 },
            (Step::Delete(n), Step::Delete(n16)) => DeltaOp::Delete { n, n16 },
            (Step::Insert(v), _) => DeltaOp::Insert(v),
            (a, _) => unreachable!("steps differ by unit: {a:?}"),
        })
        .collect()
}

fn compose_in(edits: &[SeqEdit], u16: bool) -> Vec<Step> {
    // Segments over the new document: original content kept, inserted, or
    // original content removed (which takes no room in the new document).
    // A final unbounded retain is implicit.
    let mut segs: Vec<Step> = Vec::new();
    for e in edits {
        match e {
            SeqEdit::Ins {
                at, at16, content, ..
            } => {
                let i = seek(&mut segs, if u16 { *at16 } else { *at }, u16);
                segs.insert(i, Step::Insert(content.clone()));
            }
            SeqEdit::Del { at, at16, n, n16 } => {
                let (at, n) = if u16 { (*at16, *n16) } else { (*at, *n) };
                let mut i = seek(&mut segs, at, u16);
                let mut left = n;
                while left > 0 {
                    if i >= segs.len() {
                        segs.push(Step::Delete(left));
                        break;
                    }
                    match &mut segs[i] {
                        Step::Delete(_) => i += 1,
                        Step::Retain(r) => {
                            if *r <= left {
                                left -= *r;
                                segs[i] = Step::Delete(*r);
                                i += 1;
                            } else {
                                *r -= left;
                                segs.insert(i, Step::Delete(left));
                                left = 0;
                            }
                        }
                        Step::Insert(v) => {
                            let w = width(v, u16);
                            if w <= left {
                                left -= w;
                                segs.remove(i);
                            } else {
                                let (_, tail) = split(std::mem::replace(v, Value::Null), left, u16);
                                *v = tail;
                                left = 0;
                            }
                        }
                    }
                }
            }
        }
    }
    while matches!(segs.last(), Some(Step::Retain(_))) {
        segs.pop();
    }
    let mut out: Vec<Step> = Vec::with_capacity(segs.len());
    for s in segs {
        match (out.last_mut(), s) {
            (Some(Step::Retain(n)), Step::Retain(a)) | (Some(Step::Delete(n)), Step::Delete(a)) => {
                *n += a
            }
            (Some(Step::Insert(v)), Step::Insert(w)) => concat(v, w),
            (_, s) => out.push(s),
        }
    }
    out
}

/// Makes a segment boundary at new-document index `at` (splitting a
/// retain or an insert, or extending the implicit final retain); returns
/// the index of the segment that starts there.
fn seek(segs: &mut Vec<Step>, at: u64, u16: bool) -> usize {
    let mut pos = 0u64;
    let mut i = 0usize;
    while i < segs.len() {
        let w = match &segs[i] {
            Step::Delete(_) => {
                i += 1;
                continue;
            }
            Step::Retain(n) => *n,
            Step::Insert(v) => width(v, u16),
        };
        if pos + w > at {
            let k = at - pos;
            if k == 0 {
                return i;
            }
            match &mut segs[i] {
                Step::Retain(n) => {
                    let rest = *n - k;
                    *n = k;
                    segs.insert(i + 1, Step::Retain(rest));
                }
                Step::Insert(v) => {
                    let (head, tail) = split(std::mem::replace(v, Value::Null), k, u16);
                    *v = head;
                    segs.insert(i + 1, Step::Insert(tail));
                }
                Step::Delete(_) => unreachable!("skipped"),
            }
            return i + 1;
        }
        pos += w;
        i += 1;
    }
    if pos < at {
        segs.push(Step::Retain(at - pos));
        i += 1;
    }
    i
}

/// The delta between two values of one list or text (a common prefix and
/// suffix kept, the middle replaced): for changes that arrive as a whole
/// state (a snapshot merge).
pub fn diff(old: &Value, new: &Value) -> Vec<DeltaOp> {
    match (old, new) {
        (Value::Str(a), Value::Str(b)) => {
            let a: Vec<char> = a.chars().collect();
            let b: Vec<char> = b.chars().collect();
            diff_by(
                &a,
                &b,
                |c| c.len_utf16() as u64,
                |s| Value::Str(s.iter().collect()),
            )
        }
        (Value::List(a), Value::List(b)) => diff_by(a, b, |_| 1, |s| Value::List(s.to_vec())),
        _ => Vec::new(),
    }
}

fn diff_by<T: PartialEq>(
    a: &[T],
    b: &[T],
    w16: impl Fn(&T) -> u64,
    make: impl Fn(&[T]) -> Value,
) -> Vec<DeltaOp> {
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let max_suf = a.len().min(b.len()) - pre;
    let suf = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max_suf)
        .take_while(|(x, y)| x == y)
        .count();
    let mut out = Vec::new();
    if pre > 0 {
        out.push(DeltaOp::Retain {
            n: pre as u64,
            n16: a[..pre].iter().map(&w16).sum(),
        });
    }
    let gone = &a[pre..a.len() - suf];
    if !gone.is_empty() {
        out.push(DeltaOp::Delete {
            n: gone.len() as u64,
            n16: gone.iter().map(&w16).sum(),
        });
    }
    let added = &b[pre..b.len() - suf];
    if !added.is_empty() {
        out.push(DeltaOp::Insert(make(added)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::Str(x.to_owned())
    }

    /// Applies a delta (code points) to a string.
    fn apply(old: &str, d: &[DeltaOp]) -> String {
        let chars: Vec<char> = old.chars().collect();
        let mut i = 0usize;
        let mut out = String::new();
        for op in d {
            match op {
                DeltaOp::Retain { n, .. } => {
                    out.extend(&chars[i..i + *n as usize]);
                    i += *n as usize;
                }
                DeltaOp::Delete { n, .. } => i += *n as usize,
                DeltaOp::Insert(Value::Str(t)) => out.push_str(t),
                DeltaOp::Insert(_) => panic!(),
            }
        }
        out.extend(&chars[i..]);
        out
    }

    #[test]
    fn edits_compose_into_one_delta_in_both_units() {
        // "a😀bcd": insert "XY" at 2, delete 2 from 1 (😀 and X), insert
        // "Z" at 0.
        let edits = [
            SeqEdit::Ins {
                at: 2,
                at16: 3,
                content: s("XY"),
            },
            SeqEdit::Del {
                at: 1,
                at16: 1,
                n: 2,
                n16: 3,
            },
            SeqEdit::Ins {
                at: 0,
                at16: 0,
                content: s("Z"),
            },
        ];
        let d = compose(&edits);
        assert_eq!(apply("a😀bcd", &d), "ZaYbcd");
        assert_eq!(
            d,
            vec![
                DeltaOp::Insert(s("Z")),
                DeltaOp::Retain { n: 1, n16: 1 },
                DeltaOp::Delete { n: 1, n16: 2 },
                DeltaOp::Insert(s("Y")),
            ]
        );
        let d = diff(&s("hello world"), &s("help world"));
        assert_eq!(apply("hello world", &d), "help world");
    }
}
