//! Preprocessing helpers.
