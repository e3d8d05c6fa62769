/// What a dispatcher reports as it works: the local twin of the Lambda metrics (Invocations,
/// Errors, Duration, IteratorAge) and a hook before each checkpoint (crash drills). Every method
/// has a default that does nothing.
pub trait Observer: Send + Sync {
    /// A batch of `records` is about to be invoked; the newest is `iterator_age_s` old.
    fn invoked(&self, _function: &str, _records: usize, _iterator_age_s: f64) {}
    /// The invocation took `seconds`.
    fn duration(&self, _function: &str, _seconds: f64) {}
    /// The invocation failed, or reported failures.
    fn error(&self, _function: &str) {}
    /// The checkpoint passed `records` that the filters dropped.
    fn filtered(&self, _function: &str, _records: usize) {}
    /// `records` went to the on-failure destination.
    fn dead_lettered(&self, _function: &str, _records: usize) {}
    /// The checkpoint is about to move.
    fn before_checkpoint(&self) {}
}

/// Reports nothing.
pub struct NoObserver;

impl Observer for NoObserver {}
