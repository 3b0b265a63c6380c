//! Minimal reverse-mode autodiff tape.
