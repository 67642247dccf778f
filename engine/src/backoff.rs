//! Retry delays: exponential backoff with full jitter, honouring `Retry-After`.

use crate::config::BackoffConfig;
use crate::rng::Rng;
use chat_sync_protocol::Millis;

/// The delay before retry number `attempt` (1 for the first retry).
///
/// A uniform random value in `[0, min(cap, base * 2^(attempt-1))]`, raised to `retry_after` when
/// the server asked for a longer wait.
pub(crate) fn delay(
    config: &BackoffConfig,
    attempt: u32,
    retry_after: Option<Millis>,
    rng: &mut Rng,
) -> Millis {
    let exponent = attempt.saturating_sub(1).min(40);
    let ceiling = config
        .base_ms
        .max(0)
        .saturating_mul(1_i64 << exponent)
        .min(config.cap_ms.max(0));
    let jittered = rng.up_to(ceiling as u64) as Millis;
    jittered.max(retry_after.unwrap_or(0))
}

/// How long to wait when the server said `Retry-After: retry_after`: that, plus up to a tenth
/// more at random, so clients the server told to wait alike do not all come back at once.
pub(crate) fn server_wait(retry_after: Millis, rng: &mut Rng) -> Millis {
    let retry_after = retry_after.max(0);
    retry_after.saturating_add(rng.up_to(retry_after as u64 / 10) as Millis)
}

#[cfg(test)]
mod tests {
    use super::{delay, server_wait, BackoffConfig, Millis};
    use crate::rng::Rng;
    use proptest::prelude::{prop_assert, proptest};

    const CONFIG: BackoffConfig = BackoffConfig {
        base_ms: 1_000,
        cap_ms: 300_000,
    };

    proptest! {
        #[test]
        fn delay_stays_within_the_exponential_ceiling(seed: u64, attempt in 1u32..200) {
            let ceiling = (1_000_i64 << (attempt - 1).min(40)).min(300_000);
            let delay = delay(&CONFIG, attempt, None, &mut Rng::new(seed));
            prop_assert!((0..=ceiling).contains(&delay), "attempt {attempt}: {delay} > {ceiling}");
        }

        #[test]
        fn retry_after_is_a_lower_bound(seed: u64, attempt in 1u32..50, retry_after in 0i64..1_000_000) {
            let delay = delay(&CONFIG, attempt, Some(retry_after), &mut Rng::new(seed));
            prop_assert!(delay >= retry_after);
            prop_assert!(delay <= retry_after.max(300_000));
        }
    }

    #[test]
    fn server_waits_spread_over_a_tenth_past_retry_after() {
        let mut rng = Rng::new(1);
        let waits: Vec<Millis> = (0..1_000).map(|_| server_wait(60_000, &mut rng)).collect();
        assert!(waits.iter().all(|&w| (60_000..=66_000).contains(&w)));
        assert!(waits.iter().any(|&w| w < 61_000));
        assert!(waits.iter().any(|&w| w > 65_000));
    }

    #[test]
    fn jitter_spreads_delays_over_the_whole_range() {
        let mut rng = Rng::new(1);
        let delays: Vec<Millis> = (0..1_000)
            .map(|_| delay(&CONFIG, 20, None, &mut rng))
            .collect();
        assert!(delays.iter().any(|&d| d < 30_000));
        assert!(delays.iter().any(|&d| d > 270_000));
    }
}
