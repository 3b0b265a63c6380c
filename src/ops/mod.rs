//! Tape ops: each file holds an op's public tape API, its backward pass, a plain
//! reference implementation and its gradient tests. The kernels themselves are methods of the
//! backend's kernel families (`backend::{DenseKernels, LossKernels, StepKernels}`), one file per
//! family and backend; `README.md` beside this file states the rule and walks through one op.

pub mod accumulate;
pub mod bias;
pub mod binary;
pub mod csr_matmul;
pub mod divergences;
pub mod dropout;
pub mod likelihood;
pub mod matmul;
pub mod reduce;
pub mod row_gather;
pub mod sample;
pub mod softmax;
pub mod unary;

#[cfg(test)]
pub(crate) mod gradcheck;
