//! Retry timing: exponential backoff with full jitter, never sooner than the platform asked
//! (`Retry-After`, rate-limit reset).

use std::time::Duration;

/// The delay before attempt `attempt` (1-based: the delay after the first failure is for
/// attempt 2) — uniformly random in `[0, min(cap, base * 2^(attempt-1))]`, then at least
/// `floor` (what the platform asked for).
pub fn delay(
    attempt: u32,
    base: Duration,
    cap: Duration,
    floor: Option<Duration>,
    unit: f64,
) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let ceiling = base.saturating_mul(1u32 << exp.min(20)).min(cap);
    let jittered = ceiling.mul_f64(unit.clamp(0.0, 1.0));
    match floor {
        Some(f) => jittered.max(f),
        None => jittered,
    }
}

/// A uniform random number in [0, 1) from the operating system.
pub fn unit_random() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(30);
    const CAP: Duration = Duration::from_secs(3600);

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        assert_eq!(delay(1, BASE, CAP, None, 1.0), Duration::from_secs(30));
        assert_eq!(delay(2, BASE, CAP, None, 1.0), Duration::from_secs(60));
        assert_eq!(delay(5, BASE, CAP, None, 1.0), Duration::from_secs(480));
        assert_eq!(delay(40, BASE, CAP, None, 1.0), CAP);
    }

    #[test]
    fn jitter_spreads_between_zero_and_the_ceiling() {
        assert_eq!(delay(3, BASE, CAP, None, 0.0), Duration::ZERO);
        assert_eq!(delay(3, BASE, CAP, None, 0.5), Duration::from_secs(60));
    }

    #[test]
    fn retry_after_is_a_floor() {
        let floor = Some(Duration::from_secs(900));
        assert_eq!(delay(1, BASE, CAP, floor, 0.3), Duration::from_secs(900));
        assert_eq!(delay(12, BASE, CAP, Some(Duration::from_secs(1)), 1.0), CAP);
    }

    #[test]
    fn random_units_are_in_range() {
        for _ in 0..100 {
            let u = unit_random();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
