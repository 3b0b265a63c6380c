//! `scdreamer._scdreamer`: the Rust engine for the Python package. The Python side
//! (`python/scdreamer/`) takes an AnnData apart into numpy arrays and writes the results back;
//! this module validates the arrays, trains and infers through the library's pipeline (the
//! same calls as the CLI) and hands results back as numpy arrays.

mod args;
mod errors;
mod input;
mod model;
mod threads;
mod trainer;

use pyo3::prelude::*;

#[pymodule]
fn _scdreamer(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", scdreamer::VERSION)?;
    m.add_class::<input::Data>()?;
    m.add_class::<trainer::Trainer>()?;
    m.add_class::<model::Model>()?;
    m.add_function(wrap_pyfunction!(input::read_data, m)?)?;
    m.add_function(wrap_pyfunction!(trainer::prepare, m)?)?;
    Ok(())
}
