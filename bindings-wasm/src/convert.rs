//! JS ↔ core values, through serde-wasm-bindgen.
//!
//! * A safe integral number or a BigInt → int; other numbers → float.
//! * string, boolean, null (and undefined) → themselves; Uint8Array → bytes.
//! * Array → list; plain object → map.
//! * Back to JS, an int is a number when it is safe and a BigInt otherwise;
//!   bytes are a Uint8Array and maps plain objects.

use std::collections::BTreeMap;
use std::fmt;

use minidote_core::MAX_DEPTH;
use minidote_core::{CrdtType, Key, Update, Value};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};

/// Largest integer a JS number holds exactly (2^53 - 1).
const MAX_SAFE: i64 = 9_007_199_254_740_991;

/// A value as it crosses the JS boundary.
pub struct JsVal(pub Value);

struct Ref<'a>(&'a Value);

impl Serialize for Ref<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) if (-MAX_SAFE..=MAX_SAFE).contains(i) => s.serialize_f64(*i as f64),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(t) => s.serialize_str(t),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for v in l {
                    seq.serialize_element(&Ref(v))?;
                }
                seq.end()
            }
            Value::Map(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, &Ref(v))?;
                }
                map.end()
            }
        }
    }
}

struct ValueVisitor {
    depth: usize,
}

impl ValueVisitor {
    fn nested<E: de::Error>(&self) -> Result<usize, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!(
                "value nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(self.depth + 1)
    }
}

struct Nested(usize);

impl<'de> de::DeserializeSeed<'de> for Nested {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor { depth: self.0 })
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "null, a boolean, a number, a BigInt, a string, a Uint8Array, an array or a plain object",
        )
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("int {v} is outside the 64-bit signed range")))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.nested()?;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element_seed(Nested(depth))? {
            out.push(v);
        }
        Ok(Value::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.nested()?;
        let mut out = BTreeMap::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(Nested(depth))?;
            out.insert(k, v);
        }
        Ok(Value::Map(out))
    }
}

impl<'de> Deserialize<'de> for JsVal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JsVal, D::Error> {
        d.deserialize_any(ValueVisitor { depth: 0 }).map(JsVal)
    }
}

/// Why a string with a lone surrogate is refused.
const LONE_SURROGATE: &str = "string holds a lone surrogate, which is not valid Unicode text (it would turn into U+FFFD, and two different strings into one); encode it first";

/// A JS string as UTF-8, refusing lone surrogates (which UTF-8 cannot hold:
/// a lossy conversion would make two different keys one object).
fn text(v: &JsValue) -> Option<Result<String, String>> {
    let s = v.dyn_ref::<js_sys::JsString>()?;
    if !s.is_valid_utf16() {
        return Some(Err(LONE_SURROGATE.to_owned()));
    }
    Some(Ok(String::from(s)))
}

/// Whether every string inside `v` (array items, object keys and values)
/// is well-formed UTF-16. Only nested values take this walk.
fn well_formed(v: &JsValue, depth: usize) -> bool {
    if depth > MAX_DEPTH + 1 {
        return true; // the depth limit refuses it anyway
    }
    if let Some(s) = v.dyn_ref::<js_sys::JsString>() {
        return s.is_valid_utf16();
    }
    if let Some(a) = as_array(v) {
        return a.iter().all(|x| well_formed(&x, depth + 1));
    }
    if v.is_object() && !v.is_instance_of::<js_sys::Uint8Array>() {
        let o: &js_sys::Object = v.unchecked_ref();
        return js_sys::Object::entries(o).iter().all(|e| {
            let kv: js_sys::Array = e.unchecked_into();
            well_formed(&kv.get(0), depth + 1) && well_formed(&kv.get(1), depth + 1)
        });
    }
    true
}

/// JS → Value.
pub fn to_value(v: JsValue) -> Result<Value, String> {
    if !well_formed(&v, 0) {
        return Err(LONE_SURROGATE.to_owned());
    }
    serde_wasm_bindgen::from_value::<JsVal>(v)
        .map(|j| j.0)
        .map_err(|e| e.to_string())
}

fn serializer() -> serde_wasm_bindgen::Serializer {
    serde_wasm_bindgen::Serializer::new()
        .serialize_maps_as_objects(true)
        .serialize_large_number_types_as_bigints(true)
        .serialize_missing_as_null(true)
}

/// Value → JS.
pub fn from_value(v: &Value) -> JsValue {
    Ref(v).serialize(&serializer()).unwrap_or(JsValue::NULL)
}

/// Values → a JS array.
pub fn from_values(vs: &[Value]) -> JsValue {
    let arr = js_sys::Array::new_with_length(vs.len() as u32);
    for (i, v) in vs.iter().enumerate() {
        arr.set(i as u32, from_value(v));
    }
    arr.into()
}

/// `v` as an array, if it is one.
fn as_array(v: &JsValue) -> Option<js_sys::Array> {
    js_sys::Array::is_array(v).then(|| v.clone().unchecked_into())
}

/// A `[key, type, bucket]` array → Key.
pub fn to_key(v: &JsValue) -> Result<Key, String> {
    let parts = as_array(v)
        .filter(|a| a.length() == 3)
        .ok_or_else(|| "a key is a [key, type, bucket] array of 3 strings".to_owned())?;
    let s = |i: u32| -> Result<String, String> {
        text(&parts.get(i)).unwrap_or_else(|| Err("key parts must be strings".to_owned()))
    };
    let ty: CrdtType = s(1)?
        .parse()
        .map_err(|e: minidote_core::UpdateError| e.to_string())?;
    Ok(Key::new(s(0)?, ty, s(2)?))
}

/// A JS array of keys.
pub fn to_keys(v: &JsValue) -> Result<Vec<Key>, String> {
    let arr = as_array(v).ok_or_else(|| "keys must be an array".to_owned())?;
    arr.iter()
        .enumerate()
        .map(|(i, k)| to_key(&k).map_err(|e| format!("key #{i}: {e}")))
        .collect()
}

/// JS → Value, with the common scalars read in one boundary call each
/// (serde handles everything else).
fn to_value_fast(v: JsValue) -> Result<Value, String> {
    if let Some(f) = v.as_f64() {
        // A JS number: int when it is safe and integral.
        if f.fract() == 0.0 && f.abs() <= MAX_SAFE as f64 {
            return Ok(Value::Int(f as i64));
        }
        return Ok(Value::Float(f));
    }
    if let Some(t) = text(&v) {
        return t.map(Value::Str);
    }
    to_value(v)
}

/// A JS array of `[key, op]` or `[key, op, arg]` → updates. Batches
/// usually repeat the same key array and op name, so the last ones are
/// remembered by identity (`===`) and not converted again: each crossing
/// of the JS boundary costs more than the work it does.
pub fn to_updates(v: &JsValue) -> Result<Vec<Update>, String> {
    let arr = as_array(v).ok_or_else(|| "updates must be an array".to_owned())?;
    let mut out = Vec::with_capacity(arr.length() as usize);
    let mut last_key: Option<(JsValue, Key)> = None;
    let mut last_op: Option<(JsValue, String)> = None;
    for (i, u) in arr.iter().enumerate() {
        let shape = || format!("update #{i}: an update is a [key, op] or [key, op, arg] array");
        let t = as_array(&u).ok_or_else(shape)?;
        let len = t.length();
        if !(2..=3).contains(&len) {
            return Err(shape());
        }
        let key_js = t.get(0);
        let key = match &last_key {
            Some((js, k)) if *js == key_js => k.clone(),
            _ => {
                let k = to_key(&key_js).map_err(|e| format!("update #{i}: {e}"))?;
                last_key = Some((key_js, k.clone()));
                k
            }
        };
        let op_js = t.get(1);
        let op = match &last_op {
            Some((js, name)) if *js == op_js => name.clone(),
            _ => {
                let name = op_js
                    .as_string()
                    .ok_or_else(|| format!("update #{i}: the op name must be a string"))?;
                last_op = Some((op_js, name.clone()));
                name
            }
        };
        let arg = if len == 3 {
            Some(to_value_fast(t.get(2)).map_err(|e| format!("update #{i}: {e}"))?)
        } else {
            None
        };
        // List and text indexes count UTF-16 units here (`string.length`).
        let mut u = Update::parse(key, &op, arg).map_err(|e| e.at(i).to_string())?;
        u.op = u.op.in_utf16();
        out.push(u);
    }
    Ok(out)
}

/// Key → `[key, type, bucket]`.
pub fn from_key(k: &Key) -> JsValue {
    let a = js_sys::Array::new();
    a.push(&JsValue::from_str(&k.key));
    a.push(&JsValue::from_str(k.ty.name()));
    a.push(&JsValue::from_str(&k.bucket));
    a.into()
}

/// A delta as `[{retain: n}, {insert: x}, {delete: n}]`, in UTF-16 units.
pub fn from_delta(d: &[minidote_core::DeltaOp]) -> JsValue {
    let out = js_sys::Array::new();
    for op in d {
        let o = js_sys::Object::new();
        let (k, v) = match op {
            minidote_core::DeltaOp::Retain { n16, .. } => {
                ("retain", JsValue::from_f64(*n16 as f64))
            }
            minidote_core::DeltaOp::Delete { n16, .. } => {
                ("delete", JsValue::from_f64(*n16 as f64))
            }
            minidote_core::DeltaOp::Insert(v) => ("insert", from_value(v)),
        };
        let _ = js_sys::Reflect::set(&o, &k.into(), &v);
        out.push(&o);
    }
    out.into()
}
