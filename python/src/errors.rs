//! Library errors as Python exceptions. The library's messages name CLI flags; here they name
//! the keyword arguments of the Python API instead, so the hint is one a Python user can follow.

use pyo3::PyErr;
use pyo3::exceptions::{PyKeyError, PyValueError};

/// CLI flag (as the library's messages write it) -> keyword argument. Longer flags first, so
/// `--lr-schedule` is not rewritten as `--lr`.
const FLAGS: &[(&str, &str)] = &[
    ("--allow-non-integer", "allow_non_integer=True"),
    ("--allow-single-batch", "allow_single_batch=True"),
    ("--layer NAME", "layer=NAME"),
    ("--batch-key", "batch_key"),
    ("--labels-key", "labels_key"),
    ("--transform-batch", "transform_batch"),
    ("--device cpu or auto", "device='cpu' or 'auto'"),
    ("--device cuda", "device='cuda'"),
    ("--batch-size", "batch_size"),
    ("--lr-schedule", "lr_schedule"),
    ("--hidden", "n_hidden"),
    ("--latent", "n_latent"),
    ("--epochs", "max_epochs"),
    ("--lr", "lr"),
];

/// The message with the Python names of the flags it mentions.
pub fn pythonic(message: &str) -> String {
    let mut m = message.to_string();
    for (flag, kwarg) in FLAGS {
        m = m.replace(flag, kwarg);
    }
    m
}

/// An error of the library as a Python exception: a PyErr raised inside (e.g. KeyboardInterrupt
/// from a progress callback) comes back as itself; a missing key is a KeyError; anything else
/// a ValueError. The message holds the whole context chain, like the CLI's `error:` line.
pub fn to_py(e: anyhow::Error) -> PyErr {
    let e = match e.downcast::<PyErr>() {
        Ok(py) => return py,
        Err(e) => e,
    };
    let message = pythonic(&format!("{e:#}"));
    if message.contains(" key '") && message.contains("' not found") {
        PyKeyError::new_err(message)
    } else {
        PyValueError::new_err(message)
    }
}

/// `to_py` for results.
pub trait IntoPy<T> {
    fn py_err(self) -> Result<T, PyErr>;
}

impl<T> IntoPy<T> for anyhow::Result<T> {
    fn py_err(self) -> Result<T, PyErr> {
        self.map_err(to_py)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_keyword_arguments() {
        assert_eq!(
            pythonic("use --lr-schedule or --lr, or --allow-non-integer"),
            "use lr_schedule or lr, or allow_non_integer=True"
        );
    }
}
