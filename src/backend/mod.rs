//! Compute backends behind one seam: CPU now, CUDA later.
