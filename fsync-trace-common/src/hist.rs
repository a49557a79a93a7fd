//! Log2 latency buckets, used the same way in the kernel (if aggregating) and in userspace.

/// Number of log2 buckets: bucket `i` holds values in `[2^(i-1), 2^i)`, bucket 0 holds 0.
pub const LOG2_BUCKETS: usize = 64;

/// Index of the log2 bucket for `v` (0 for 0, otherwise floor(log2 v) + 1).
#[inline(always)]
pub fn log2_bucket(v: u64) -> usize {
    if v == 0 {
        0
    } else {
        (64 - v.leading_zeros()) as usize
    }
}

/// Smallest value that falls in bucket `i`.
#[inline(always)]
pub fn bucket_lower_bound(i: usize) -> u64 {
    if i == 0 {
        0
    } else {
        1u64 << (i - 1)
    }
}
