//! Dense matmul on the `gemm` crate (rayon-parallel for large products).

use crate::backend::GemmSpec;

/// Products with fewer multiply-adds than this run single-threaded (rayon overhead).
const PAR_FLOPS: usize = 1 << 18;

/// C = alpha * op(A) op(B) + beta * C on row-major slices; see [`GemmSpec`].
pub fn gemm(s: GemmSpec, a: &[f32], b: &[f32], c: &mut [f32]) {
    let GemmSpec {
        m,
        n,
        k,
        trans_a,
        trans_b,
        alpha,
        beta,
    } = s;
    assert_eq!(
        a.len(),
        m * k,
        "gemm: A has {} values, expected {m}x{k}",
        a.len()
    );
    assert_eq!(
        b.len(),
        k * n,
        "gemm: B has {} values, expected {k}x{n}",
        b.len()
    );
    assert_eq!(
        c.len(),
        m * n,
        "gemm: C has {} values, expected {m}x{n}",
        c.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // The empty product is 0: C = beta * C.
        if beta == 0.0 {
            c.fill(0.0);
        } else {
            c.iter_mut().for_each(|v| *v *= beta);
        }
        return;
    }
    // Strides (column stride, row stride) of the logical op(A) [m,k] and op(B) [k,n].
    let (a_cs, a_rs) = if trans_a {
        (m as isize, 1)
    } else {
        (1, k as isize)
    };
    let (b_cs, b_rs) = if trans_b {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    let threads = rayon::current_num_threads();
    let par = if m * n * k >= PAR_FLOPS && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the slice lengths were checked against the strides above; the `gemm`
    // crate's convention is dst = alpha_g * dst + beta_g * lhs * rhs, so our beta is its
    // alpha and our alpha its beta; read_dst = false never reads C (NaN-safe overwrite).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            beta != 0.0,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            beta,
            alpha,
            false,
            false,
            false,
            par,
        );
    }
}
