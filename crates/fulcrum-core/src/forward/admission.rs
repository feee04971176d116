//! How many requests a pool admits at once.

/// The request limit of a pool with `max_requests = max` whose warm share is
/// `warm_permille` (1000 when no backend is in slow start): scaled down while the pool
/// warms, so a pool that returns cold from an outage does not take full load in one
/// instant, and never below one. `u32::MAX` means unlimited and stays so.
pub fn admission_limit(max: u32, warm_permille: u32) -> u32 {
    if max == u32::MAX {
        return max;
    }
    let warm = u64::from(warm_permille.clamp(1, 1000));
    u32::try_from(u64::from(max) * warm / 1000)
        .unwrap_or(max)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_stays_unlimited() {
        assert_eq!(admission_limit(u32::MAX, 0), u32::MAX);
        assert_eq!(admission_limit(u32::MAX, 500), u32::MAX);
    }

    #[test]
    fn scales_with_the_warm_share_and_never_reaches_zero() {
        assert_eq!(admission_limit(100, 1000), 100);
        assert_eq!(admission_limit(100, 500), 50);
        assert_eq!(admission_limit(100, 0), 1);
        assert_eq!(admission_limit(1, 10), 1);
        // Out-of-range shares are clamped to full.
        assert_eq!(admission_limit(100, 5000), 100);
        assert_eq!(admission_limit(u32::MAX - 1, 1000), u32::MAX - 1);
    }
}
