use std::sync::Arc;
use std::time::Duration;

/// A function a mapping or an invoker delivers to, and the name it is reported under (metrics,
/// logs, the on-failure destination's messages).
pub struct Target<F: ?Sized> {
    pub name: String,
    pub function: Arc<F>,
}

impl<F: ?Sized> Target<F> {
    pub fn new(name: impl Into<String>, function: Arc<F>) -> Target<F> {
        Target {
            name: name.into(),
            function,
        }
    }
}

/// Pauses between the retries of a failing batch or event: `first` after the first failure,
/// doubled per attempt, never more than `max`. Retries are what `MaximumRetryAttempts` counts, so
/// the pauses decide how long a transient outage may last before the records are given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The pause after `attempts` failed attempts (1 = the first).
    pub fn after(&self, attempts: u32) -> Duration {
        self.first
            .saturating_mul(1 << attempts.saturating_sub(1).min(16))
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_up_to_its_bound() {
        let b = Backoff {
            first: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        let pauses: Vec<u64> = (1..=7).map(|n| b.after(n).as_secs()).collect();
        assert_eq!(pauses, [2, 4, 8, 16, 32, 60, 60]);
    }
}
