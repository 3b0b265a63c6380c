//! A dataset's CSR matrix resident on the backend (uploaded once, shared by every step).

use crate::backend::Memory;
use crate::csr::Csr;
use std::sync::Arc;

/// Uploaded CSR counts (cells x genes) with an optional per-cell scale for
/// `InputTransform::Log1pScaled`. Cloning shares the device copy.
pub struct CsrData<B: Memory> {
    pub(crate) buf: Arc<B::CsrBuf>,
    pub n_rows: usize,
    pub n_cols: usize,
    pub nnz: usize,
    pub has_row_scale: bool,
}

impl<B: Memory> Clone for CsrData<B> {
    fn clone(&self) -> Self {
        CsrData {
            buf: self.buf.clone(),
            ..*self
        }
    }
}

impl<B: Memory> CsrData<B> {
    /// Validate and upload `csr`; `row_scale` has one entry per cell.
    pub fn upload(backend: &B, csr: &Csr, row_scale: Option<&[f32]>) -> anyhow::Result<Self> {
        let buf = backend.upload_csr(csr, row_scale)?;
        Ok(Self::from_buf(backend, buf, row_scale.is_some()))
    }

    /// [`CsrData::upload`] of a matrix the caller gives up: see [`Backend::upload_csr_owned`]
    /// (the host matrix comes back only where the backend made a copy).
    pub fn upload_owned(
        backend: &B,
        csr: Csr,
        row_scale: Option<&[f32]>,
    ) -> anyhow::Result<(Self, Option<Csr>)> {
        let (buf, host) = backend.upload_csr_owned(csr, row_scale)?;
        Ok((Self::from_buf(backend, buf, row_scale.is_some()), host))
    }

    fn from_buf(backend: &B, buf: B::CsrBuf, has_row_scale: bool) -> Self {
        let (n_rows, n_cols, nnz) = backend.csr_shape(&buf);
        CsrData {
            buf: Arc::new(buf),
            n_rows,
            n_cols,
            nnz,
            has_row_scale,
        }
    }

    /// The host matrix behind this upload, where the backend keeps it (CPU).
    pub fn host(&self) -> Option<&Csr> {
        B::host_csr(&self.buf)
    }
}
