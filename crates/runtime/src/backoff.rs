//! Per-object retry backoff for reconcile errors: 200 ms doubling up to 60 s, with jitter so
//! that retries of many objects spread out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Per-object retry backoff after failed reconciles.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

/// Delay before retry number `failures` (1-based): 200 ms doubling up to 60 s.
pub fn backoff_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    Duration::from_millis(200u64.saturating_mul(1 << exp)).min(Duration::from_secs(60))
}

/// `d` with ±20 % jitter, so retries of many objects spread out.
pub fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.8 + rand::random::<f64>() * 0.4)
}

impl Backoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one more failure of `key` and returns the delay before its retry.
    pub fn failed(&self, key: String) -> Duration {
        let mut map = self.lock();
        let n = map.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        jitter(backoff_delay(*n))
    }

    /// Forgets the failures of `key`.
    pub fn succeeded(&self, key: &str) {
        let mut map = self.lock();
        if !map.is_empty() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_delay(1), Duration::from_millis(200));
        assert_eq!(backoff_delay(2), Duration::from_millis(400));
        assert_eq!(backoff_delay(5), Duration::from_millis(3200));
        assert_eq!(backoff_delay(30), Duration::from_secs(60));
        let b = Backoff::default();
        let first = b.failed("x".into());
        assert!(first >= Duration::from_millis(160) && first <= Duration::from_millis(240));
        let second = b.failed("x".into());
        assert!(second >= Duration::from_millis(320));
        b.succeeded("x");
        assert!(b.failed("x".into()) <= Duration::from_millis(240));
    }
}
