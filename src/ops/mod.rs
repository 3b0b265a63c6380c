//! Tape ops: each file holds an op's public tape API, its backward pass, a plain
//! reference implementation and its gradient tests. The kernels themselves live in the
//! backends (`crate::backend::cpu` for the CPU); the fused loss math is in `losses`.

pub mod accumulate;
pub mod bias;
pub mod binary;
pub mod csr_matmul;
pub mod dropout;
pub mod loss_ops;
pub mod losses;
pub mod matmul;
pub mod reduce;
pub mod row_gather;
pub mod sample;
pub mod softmax;
pub mod unary;

#[cfg(test)]
pub(crate) mod gradcheck;
