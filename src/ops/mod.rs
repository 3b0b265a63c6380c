//! Tape ops: each file (or folder) holds an op's public tape API, its backward pass, a plain
//! reference implementation and its gradient tests. The kernels are methods of the backend's
//! kernel families (`backend::{DenseKernels, LossKernels, StepKernels}`), or, for an op in a
//! folder of its own, of the kernel trait its folder defines; [`Backend`] lists them all.
//! `README.md` beside this file states the rule and walks through one op.

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
pub mod unary;

#[cfg(test)]
pub(crate) mod gradcheck;
#[cfg(test)]
mod parity;

use crate::backend::cpu::Cpu;
use crate::backend::{DenseKernels, LossKernels, Memory, StepKernels};

/// Declares the op folders, one line each (`<op> => <Op>Kernels`): the line makes the folder a
/// module and adds its kernel trait to the umbrella [`Backend`] bound, so a new op folder is
/// registered by one line here and nothing else outside its folder.
macro_rules! op_folders {
    ($($op:ident => $kernels:ident),* $(,)?) => {
        $(pub mod $op;)*

        /// The kernel interface the tape's ops need, as one bound: the buffers ([`Memory`]), each
        /// family of kernels of `src/backend/` and each op folder's kernel trait (from
        /// `op_folders!`). Declared here, above the op folders, so that nothing in `src/backend/`
        /// imports an op.
        pub trait Backend: Memory + DenseKernels + LossKernels + StepKernels $(+ $op::$kernels)* {
            /// Short name for logs ("cpu", "cuda").
            fn name(&self) -> &'static str;
        }
    };
}

op_folders! {
    softmax => SoftmaxKernels,
    bhattacharyya => BhattacharyyaKernels,
}

impl Backend for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }
}

#[cfg(feature = "cuda")]
impl Backend for crate::backend::cuda::CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }
}

/// Every trait of the kernel contract but the op folders' own, for code that calls kernels on a
/// concrete backend (`Cpu`, `CudaBackend`): a method of a supertrait is only in scope where its
/// trait is.
pub mod prelude {
    pub use super::Backend;
    pub use crate::backend::{DenseKernels, LossKernels, Memory, StepKernels};
}
