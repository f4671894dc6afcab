//! Conversions between Python objects and the core's values, keys, updates
//! and clocks. Every failure is an `InvalidOperation` that names the culprit.

use std::collections::BTreeMap;

use minidote_core::MAX_DEPTH;
use minidote_core::{Key, Update, UpdateError, Value};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::errors::invalid;

/// Python → Value. Lists and tuples become lists; dicts need str keys.
pub fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_value_at(obj, 0)
}

fn to_value_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // bool is a subclass of int: test it first.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return match obj.extract::<i64>() {
            Ok(i) => Ok(Value::Int(i)),
            Err(_) => Err(invalid(
                obj.py(),
                format!("int {obj} is outside the 64-bit signed range"),
            )),
        };
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::Str(text_of(s)?));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    let nested = obj.is_instance_of::<PyList>()
        || obj.is_instance_of::<PyTuple>()
        || obj.is_instance_of::<PyDict>();
    if nested && depth >= MAX_DEPTH {
        return Err(invalid(
            obj.py(),
            format!("value nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .map(|x| to_value_at(&x, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::List);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t
            .iter()
            .map(|x| to_value_at(&x, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::List);
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut m = BTreeMap::new();
        for (k, v) in d.iter() {
            let Ok(k) = k.cast::<PyString>() else {
                return Err(invalid(
                    obj.py(),
                    format!("map keys must be str, got {}", k.get_type().name()?),
                ));
            };
            m.insert(text_of(k)?, to_value_at(&v, depth + 1)?);
        }
        return Ok(Value::Map(m));
    }
    Err(invalid(
        obj.py(),
        format!(
            "cannot store a value of type {}: use None, bool, int, float, str, bytes, list, tuple or dict",
            obj.get_type().name()?
        ),
    ))
}

/// Value → Python.
pub fn from_value<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => f.into_pyobject(py)?.into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::List(l) => {
            let items = l
                .iter()
                .map(|x| from_value(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Map(m) => {
            let d = PyDict::new(py);
            for (k, v) in m {
                d.set_item(k, from_value(py, v)?)?;
            }
            d.into_any()
        }
    })
}

fn update_error(py: Python<'_>, e: UpdateError) -> PyErr {
    invalid(py, e.to_string())
}

/// Converts the updates (or keys) of one call. Batches usually repeat the
/// same key tuple, type and bucket strings and op names (the very same
/// Python objects), so it remembers the last ones by identity and skips
/// converting them again: under the stable ABI for Python 3.9, each str →
/// UTF-8 conversion goes through a temporary bytes object.
#[derive(Default)]
pub struct Converter<'py> {
    /// The replica's key cache (see [`KeyCache`]), if it has one.
    cache: Option<Bound<'py, PyDict>>,
    last_key: Option<(Bound<'py, PyAny>, Key)>,
    last_ty: Option<(Bound<'py, PyAny>, minidote_core::CrdtType)>,
    last_bucket: Option<(Bound<'py, PyAny>, std::sync::Arc<str>)>,
    last_op: Option<(Bound<'py, PyAny>, String)>,
    /// The last update tuple: a batch like `[(key, "increment", 1)] * 1000`
    /// repeats one tuple, and an immutable tuple is the same update again.
    last_update: Option<(Bound<'py, PyAny>, Update)>,
}

/// A replica's keys by content: a dict from `(key, type, bucket)` tuples
/// to their converted `Key`, so a batch over many keys, and the next one
/// over the same keys, converts each key's three strings once (each a
/// temporary bytes object under the stable ABI). Only exact tuples of exact
/// `str`s are cached or looked up: their hash and equality are Python's
/// own, so two different keys can never share an entry (a `str` subclass
/// could define `__eq__` to say otherwise). Bounded: when full it starts
/// over.
pub struct KeyCache(Py<PyDict>);

/// Entries kept before the cache starts over.
const KEY_CACHE_CAP: usize = 16_384;

/// A converted key, as a dict value.
#[pyclass(frozen)]
struct CachedKey(Key);

impl KeyCache {
    pub fn new(py: Python<'_>) -> Self {
        KeyCache(PyDict::new(py).unbind())
    }

    pub fn converter<'py>(&self, py: Python<'py>) -> Converter<'py> {
        Converter {
            cache: Some(self.0.bind(py).clone()),
            ..Converter::default()
        }
    }
}

/// Whether `t` is an exact tuple of three exact `str`s.
fn plain_key(t: &Bound<'_, PyTuple>) -> bool {
    t.is_exact_instance_of::<PyTuple>()
        && t.len() == 3
        && (0..3).all(|i| {
            t.get_borrowed_item(i)
                .is_ok_and(|x| x.is_exact_instance_of::<PyString>())
        })
}

impl<'py> Converter<'py> {
    /// A `(key, type, bucket)` tuple → Key.
    pub fn key(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<Key> {
        if let Some((o, k)) = &self.last_key {
            if o.is(obj) {
                return Ok(k.clone());
            }
        }
        let cache = match (&self.cache, obj.cast::<PyTuple>()) {
            (Some(c), Ok(t)) if plain_key(t) => Some(c.clone()),
            _ => None,
        };
        if let Some(c) = &cache {
            if let Some(hit) = c.get_item(obj)? {
                if let Ok(k) = hit.cast::<CachedKey>() {
                    let key = k.get().0.clone();
                    self.last_key = Some((obj.clone(), key.clone()));
                    return Ok(key);
                }
            }
        }
        let key = self.convert_key(obj)?;
        if let Some(c) = cache {
            if c.len() >= KEY_CACHE_CAP {
                c.clear();
            }
            c.set_item(obj, Bound::new(obj.py(), CachedKey(key.clone()))?)?;
        }
        Ok(key)
    }

    fn convert_key(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<Key> {
        let py = obj.py();
        let t = obj.cast::<PyTuple>().map_err(|_| {
            invalid(
                py,
                format!("a key is a (key, type, bucket) tuple of str, got {obj}"),
            )
        })?;
        if t.len() != 3 {
            return Err(invalid(
                py,
                format!("a key is a (key, type, bucket) tuple of 3 str, got {obj}"),
            ));
        }
        let text = |item: &Bound<'py, PyAny>| -> PyResult<String> {
            match item.cast::<PyString>() {
                Ok(s) => text_of(s),
                Err(_) => Err(invalid(py, format!("key parts must be str, got {obj}"))),
            }
        };
        let name = text(&t.get_item(0)?)?;
        let ty_obj = t.get_item(1)?;
        let ty = match &self.last_ty {
            Some((o, ty)) if o.is(&ty_obj) => *ty,
            _ => {
                let ty: minidote_core::CrdtType = text(&ty_obj)?
                    .parse()
                    .map_err(|e: UpdateError| update_error(py, e))?;
                self.last_ty = Some((ty_obj, ty));
                ty
            }
        };
        let bucket_obj = t.get_item(2)?;
        let bucket = match &self.last_bucket {
            Some((o, b)) if o.is(&bucket_obj) => b.clone(),
            _ => {
                let b: std::sync::Arc<str> = text(&bucket_obj)?.into();
                self.last_bucket = Some((bucket_obj, b.clone()));
                b
            }
        };
        let key = Key::new(name, ty, bucket);
        self.last_key = Some((obj.clone(), key.clone()));
        Ok(key)
    }

    /// A `(key, op)` or `(key, op, arg)` tuple → Update.
    pub fn update(&mut self, obj: &Bound<'py, PyAny>, index: usize) -> PyResult<Update> {
        if let Some((o, u)) = &self.last_update {
            if o.is(obj) {
                return Ok(u.clone());
            }
        }
        let u = self.convert_update(obj, index)?;
        // Only an exact tuple is immutable (a list could change meanwhile).
        if obj.is_exact_instance_of::<PyTuple>() {
            self.last_update = Some((obj.clone(), u.clone()));
        }
        Ok(u)
    }

    fn convert_update(&mut self, obj: &Bound<'py, PyAny>, index: usize) -> PyResult<Update> {
        let py = obj.py();
        let t = obj.cast::<PyTuple>().map_err(|_| {
            invalid(
                py,
                format!(
                    "update #{index}: an update is a (key, op) or (key, op, arg) tuple, got {obj}"
                ),
            )
        })?;
        if !(2..=3).contains(&t.len()) {
            return Err(invalid(
                py,
                format!(
                    "update #{index}: an update is a (key, op) or (key, op, arg) tuple, got {obj}"
                ),
            ));
        }
        let key = self
            .key(&t.get_item(0)?)
            .map_err(|e| invalid(py, format!("update #{index}: {}", e.value(py))))?;
        let op_obj = t.get_item(1)?;
        let op = match &self.last_op {
            Some((o, name)) if o.is(&op_obj) => name.clone(),
            _ => {
                let name: String = op_obj.extract().map_err(|_| {
                    invalid(py, format!("update #{index}: the op name must be a str"))
                })?;
                self.last_op = Some((op_obj, name.clone()));
                name
            }
        };
        let arg = if t.len() == 3 {
            Some(to_value(&t.get_item(2)?)?)
        } else {
            None
        };
        Update::parse(key, &op, arg).map_err(|e| update_error(py, e.at(index)))
    }
}

/// A `str` as UTF-8. A lone surrogate (which `str` allows and UTF-8 cannot
/// hold) is `InvalidOperation`: two different strings must never become
/// one key or one element.
fn text_of(s: &Bound<'_, PyString>) -> PyResult<String> {
    s.to_cow().map(|c| c.into_owned()).map_err(|_| {
        invalid(
            s.py(),
            "string holds a lone surrogate, which is not valid Unicode text; encode it first",
        )
    })
}
