//! The exception classes live in `minidote/_errors.py`, because they need
//! two builtin bases each (e.g. `InvalidOperation(MinidoteError,
//! ValueError)`); this module raises them from Rust.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

fn class(py: Python<'_>, cell: &'static PyOnceLock<Py<PyType>>, name: &str) -> Option<Py<PyType>> {
    cell.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        let m = py.import("minidote._errors")?;
        Ok(m.getattr(name)?.cast_into::<PyType>()?.unbind())
    })
    .ok()
    .map(|t| t.clone_ref(py))
}

fn make(py: Python<'_>, cell: &'static PyOnceLock<Py<PyType>>, name: &str, msg: String) -> PyErr {
    match class(py, cell, name) {
        Some(t) => PyErr::from_type(t.into_bound(py), msg),
        None => PyRuntimeError::new_err(format!("{name}: {msg}")),
    }
}

static INVALID: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMEOUT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static STORAGE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static BASE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static PROTOCOL: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `ProtocolError(MinidoteError)`: bytes from a peer or a channel that the
/// protocol refuses.
pub fn protocol(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    make(py, &PROTOCOL, "ProtocolError", msg.into())
}

/// `InvalidOperation(MinidoteError, ValueError)`.
pub fn invalid(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    make(py, &INVALID, "InvalidOperation", msg.into())
}

/// `ClockTimeout(MinidoteError, TimeoutError)`.
pub fn timeout(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    make(py, &TIMEOUT, "ClockTimeout", msg.into())
}

/// `StorageError(MinidoteError, OSError)`.
pub fn storage(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    make(py, &STORAGE, "StorageError", msg.into())
}

/// `MinidoteError`.
pub fn base(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    make(py, &BASE, "MinidoteError", msg.into())
}
