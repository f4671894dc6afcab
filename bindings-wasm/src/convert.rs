//! JS values built one by one, for the rare paths: the keys and deltas a
//! subscriber gets, and a cursor's key. Batches of updates, keys and values
//! cross in one buffer instead (batch.rs).
//!
//! Back to JS, an int is a number when it is safe and a BigInt otherwise;
//! bytes are a Uint8Array and maps plain objects (through serde-wasm-bindgen).

use minidote_core::{CrdtType, Key, Value};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};

/// Largest integer a JS number holds exactly (2^53 - 1).
const MAX_SAFE: i64 = 9_007_199_254_740_991;

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
