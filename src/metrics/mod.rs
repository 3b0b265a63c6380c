//! Integration metrics computed in Rust (kNN label purity, batch entropy).
