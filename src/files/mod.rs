//! Files and memory, below everything that reads or writes: outputs written atomically (a
//! temporary file beside the target, renamed on success, removed on error or Ctrl-C), every
//! output path checked before a run starts, and allocations checked against free memory.

pub mod cleanup;
pub mod memory;
pub mod outputs;
