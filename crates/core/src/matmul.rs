//! The one call into the `gemm` crate (the matrix kernel that flex itself uses), shared by
//! gc-models' convolutions, gc-hf's attention and gc-onnx's convolutions: `gemm::gemm` takes
//! nineteen positional arguments, easy to get wrong in two places, so they are written out once
//! here.

pub use gemm::Parallelism;

/// `dst[m, n] = lhs[m, k] x rhs[k, n]`, or `dst += ...` with `accumulate`. Each matrix is given
/// as its first element, its row stride and its column stride (in elements), so that callers can
/// read transposed or interleaved operands and write into part of a larger buffer in place.
///
/// # Safety
/// Every element addressed by those strides must be inside its buffer, and `dst` must be written
/// by no one else meanwhile (with `Parallelism::None` it is written from this thread only).
#[allow(unsafe_code)]
pub unsafe fn gemm_f32(
    [m, n, k]: [usize; 3],
    (dst, dst_row, dst_col): (*mut f32, usize, usize),
    (lhs, lhs_row, lhs_col): (*const f32, usize, usize),
    (rhs, rhs_row, rhs_col): (*const f32, usize, usize),
    accumulate: bool,
    parallelism: Parallelism,
) {
    // SAFETY: as the caller promises.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_col as isize,
            dst_row as isize,
            accumulate,
            lhs,
            lhs_col as isize,
            lhs_row as isize,
            rhs,
            rhs_col as isize,
            rhs_row as isize,
            // dst = 1 * dst + 1 * lhs x rhs; the first factor is read only when accumulating.
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
