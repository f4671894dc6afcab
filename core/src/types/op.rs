//! The op vocabulary of API.md: every op name with its argument, typed.
//! Names are shared by types (sets share `add`, maps and lists share
//! nothing with counters), so an op means what the key's type says; each
//! type's module accepts or refuses it ([`CrdtType::check_op`]).

use std::sync::Arc;

use super::seq::Pos;
use crate::codec::MAX_DEPTH;
use crate::error::UpdateError;
use crate::key::{CrdtType, Field, Key};
use crate::value::Value;

/// One operation, with its argument already typed.
#[derive(Clone, PartialEq, Debug)]
pub enum Op {
    /// Counters: add n (may be negative).
    Increment(i64),
    /// Counters: subtract n (may be negative).
    Decrement(i64),
    /// Sets: add one element.
    Add(Value),
    /// Sets: remove one element. Maps: remove the field `[name, type]`.
    Remove(Value),
    /// Sets: add several elements.
    AddAll(Vec<Value>),
    /// Sets: remove several elements.
    RemoveAll(Vec<Value>),
    /// Sets, `register_mv`, flags and `map_rr`: remove everything observed.
    /// Inside a transaction every type accepts it (see [`crate::State`]).
    Reset,
    /// Registers: assign a value.
    Assign(Value),
    /// Flags: enable.
    Enable,
    /// Flags: disable.
    Disable,
    /// Maps: apply an op of the field's type to the field.
    Update(Field, Box<Op>),
    /// Lists: insert a value at an index. Text: insert a string.
    Insert(Pos, Value),
    /// Lists: insert several values at an index.
    InsertAll(Pos, Vec<Value>),
    /// Lists and text: delete `count` elements (text: units) from an index.
    Delete(Pos, u64),
    /// Text: delete `count` units from an index, then insert a string there.
    Splice(Pos, u64, String),
}

/// The vocabulary: every op name, for parsing.
const NAMES: [&str; 15] = [
    "increment",
    "decrement",
    "add",
    "remove",
    "add_all",
    "remove_all",
    "reset",
    "assign",
    "enable",
    "disable",
    "update",
    "insert",
    "insert_all",
    "delete",
    "splice",
];

impl Op {
    /// The op's API name.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Increment(_) => "increment",
            Op::Decrement(_) => "decrement",
            Op::Add(_) => "add",
            Op::Remove(_) => "remove",
            Op::AddAll(_) => "add_all",
            Op::RemoveAll(_) => "remove_all",
            Op::Reset => "reset",
            Op::Assign(_) => "assign",
            Op::Enable => "enable",
            Op::Disable => "disable",
            Op::Update(..) => "update",
            Op::Insert(..) => "insert",
            Op::InsertAll(..) => "insert_all",
            Op::Delete(..) => "delete",
            Op::Splice(..) => "splice",
        }
    }

    /// The same op with its list and text indexes counted in UTF-16 units
    /// (JavaScript's `string.length`) instead of code points; nested ops
    /// of map fields too.
    pub fn in_utf16(self) -> Op {
        let u = |p: Pos| Pos { utf16: true, ..p };
        match self {
            Op::Insert(p, v) => Op::Insert(u(p), v),
            Op::InsertAll(p, v) => Op::InsertAll(u(p), v),
            Op::Delete(p, n) => Op::Delete(u(p), n),
            Op::Splice(p, n, s) => Op::Splice(u(p), n, s),
            Op::Update(f, op) => Op::Update(f, Box::new(op.in_utf16())),
            op => op,
        }
    }

    /// Parses an `(op, arg)` pair for an object of type `ty`. `Null` counts
    /// as "no argument" for ops that take none and for counters (default 1).
    pub fn parse(ty: CrdtType, name: &str, arg: Option<Value>) -> Result<Op, UpdateError> {
        let op = Self::parse_at(ty, name, arg, 0)?;
        op.check_depth(0)?;
        ty.check_op(&op, 0)?;
        Ok(op)
    }

    fn parse_at(
        ty: CrdtType,
        name: &str,
        arg: Option<Value>,
        depth: usize,
    ) -> Result<Op, UpdateError> {
        let Some(op_name) = NAMES.iter().copied().find(|n| *n == name) else {
            return Err(UpdateError::UnknownOp {
                index: 0,
                ty,
                op: name.to_owned(),
                supported: ty.ops(),
            });
        };
        let wrong = |expected: &'static str, got: &Value| UpdateError::WrongArgument {
            index: 0,
            ty,
            op: op_name,
            expected,
            got: got.kind(),
        };
        let missing = |expected: &'static str| UpdateError::MissingArgument {
            index: 0,
            ty,
            op: op_name,
            expected,
        };
        let op = match op_name {
            "increment" | "decrement" => {
                let n = match arg {
                    None | Some(Value::Null) => 1,
                    Some(Value::Int(n)) => n,
                    Some(v) => return Err(wrong("an int", &v)),
                };
                if op_name == "increment" {
                    Op::Increment(n)
                } else {
                    Op::Decrement(n)
                }
            }
            "add" | "remove" | "assign" => {
                let v = arg.ok_or_else(|| missing("a value"))?;
                match op_name {
                    "add" => Op::Add(v),
                    "remove" => Op::Remove(v),
                    _ => Op::Assign(v),
                }
            }
            "add_all" | "remove_all" => match arg {
                Some(Value::List(l)) => {
                    if op_name == "add_all" {
                        Op::AddAll(l)
                    } else {
                        Op::RemoveAll(l)
                    }
                }
                None => return Err(missing("a list of elements")),
                Some(v) => return Err(wrong("a list of elements", &v)),
            },
            "insert" | "insert_all" | "delete" | "splice" => {
                let shape: &'static str = match op_name {
                    "insert" => "[index, value]",
                    "insert_all" => "[index, [values]]",
                    "delete" => "[index, count]",
                    _ => "[index, count, string]",
                };
                let n = if op_name == "splice" { 3 } else { 2 };
                let parts = match arg {
                    Some(Value::List(l)) if l.len() == n => l,
                    None => return Err(missing(shape)),
                    Some(v) => return Err(wrong(shape, &v)),
                };
                let mut parts = parts.into_iter();
                let int = |v: Value| match v {
                    Value::Int(i) if i >= 0 => Ok(i as u64),
                    v => Err(wrong(shape, &v)),
                };
                let at = Pos {
                    at: int(parts.next().expect("parts"))?,
                    utf16: false,
                };
                let second = parts.next().expect("parts");
                match op_name {
                    "insert" => Op::Insert(at, second),
                    "insert_all" => match second {
                        Value::List(l) => Op::InsertAll(at, l),
                        v => return Err(wrong(shape, &v)),
                    },
                    "delete" => Op::Delete(at, int(second)?),
                    _ => {
                        let count = int(second)?;
                        match parts.next().expect("parts") {
                            Value::Str(s) => Op::Splice(at, count, s),
                            v => return Err(wrong(shape, &v)),
                        }
                    }
                }
            }
            "update" => {
                const SHAPE: &str = "[field, op] or [field, op, arg], field = [name, type]";
                let parts = match arg {
                    Some(Value::List(l)) if (2..=3).contains(&l.len()) => l,
                    None => return Err(missing(SHAPE)),
                    Some(v) => return Err(wrong(SHAPE, &v)),
                };
                let mut parts = parts.into_iter();
                let field = parts.next().expect("two parts");
                let field = Field::from_value(&field).map_err(|e| match e {
                    FieldError::Shape(got) => wrong(SHAPE, &got),
                    FieldError::Type(e) => e,
                })?;
                let inner = match parts.next().expect("two parts") {
                    Value::Str(s) => s,
                    v => return Err(wrong(SHAPE, &v)),
                };
                if depth >= MAX_DEPTH {
                    return Err(UpdateError::TooDeep {
                        index: 0,
                        max: MAX_DEPTH,
                    });
                }
                let inner = Self::parse_at(field.ty, &inner, parts.next(), depth + 1)?;
                Op::Update(field, Box::new(inner))
            }
            _ => {
                if let Some(v) = arg.filter(|v| *v != Value::Null) {
                    return Err(wrong("no argument", &v));
                }
                match op_name {
                    "reset" => Op::Reset,
                    "enable" => Op::Enable,
                    _ => Op::Disable,
                }
            }
        };
        Ok(op)
    }

    /// The encoded size of the op's values: a lower bound on the size of
    /// its effect.
    #[inline]
    pub fn values_len(&self) -> usize {
        match self {
            Op::Add(v) | Op::Remove(v) | Op::Assign(v) | Op::Insert(_, v) => v.encoded_len(),
            Op::AddAll(l) | Op::RemoveAll(l) | Op::InsertAll(_, l) => {
                l.iter().map(Value::encoded_len).sum()
            }
            Op::Splice(_, _, s) => s.len(),
            Op::Update(f, op) => f.name.len() + op.values_len(),
            _ => 0,
        }
    }

    /// Checks that `ty` supports this op and that its values can be stored.
    #[inline]
    pub fn check(&self, ty: CrdtType, index: usize) -> Result<(), UpdateError> {
        self.check_depth(index)?;
        ty.check_op(self, index)
    }

    fn check_depth(&self, index: usize) -> Result<(), UpdateError> {
        let too_deep = UpdateError::TooDeep {
            index,
            max: MAX_DEPTH,
        };
        let mut op = self;
        let mut depth = 0;
        loop {
            let deep = match op {
                Op::Add(v) | Op::Remove(v) | Op::Assign(v) | Op::Insert(_, v) => {
                    v.depth() > MAX_DEPTH
                }
                Op::AddAll(l) | Op::RemoveAll(l) | Op::InsertAll(_, l) => {
                    l.iter().any(|v| v.depth() > MAX_DEPTH)
                }
                Op::Update(_, inner) => {
                    // The object and each field it goes through are one
                    // level of the effect's encoding each, and decoders
                    // take at most MAX_DEPTH: so at most MAX_DEPTH - 1
                    // updates nest.
                    depth += 1;
                    if depth >= MAX_DEPTH {
                        return Err(too_deep);
                    }
                    op = inner;
                    continue;
                }
                _ => false,
            };
            return if deep { Err(too_deep) } else { Ok(()) };
        }
    }
}

/// Why a value is not a field `[name, type]`.
pub(crate) enum FieldError {
    /// Not a list of two strings (the value given).
    Shape(Value),
    /// The type name is unknown.
    Type(UpdateError),
}

impl Field {
    /// Reads the API's `[name, type]`.
    pub(crate) fn from_value(v: &Value) -> Result<Field, FieldError> {
        match v {
            Value::List(l) => match l.as_slice() {
                [Value::Str(name), Value::Str(ty)] => {
                    let ty: CrdtType = ty.parse().map_err(FieldError::Type)?;
                    Ok(Field::new(Arc::<str>::from(name.as_str()), ty))
                }
                _ => Err(FieldError::Shape(v.clone())),
            },
            _ => Err(FieldError::Shape(v.clone())),
        }
    }
}

/// One update of a transaction: an op on a key.
#[derive(Clone, PartialEq, Debug)]
pub struct Update {
    /// The object.
    pub key: Key,
    /// The operation.
    pub op: Op,
}

impl Update {
    /// An update.
    pub fn new(key: Key, op: Op) -> Self {
        Self { key, op }
    }

    /// Parses the API's `(key, op, arg?)` shape.
    pub fn parse(key: Key, op: &str, arg: Option<Value>) -> Result<Self, UpdateError> {
        let op = Op::parse(key.ty, op, arg)?;
        Ok(Self { key, op })
    }
}
