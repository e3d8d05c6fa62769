//! Admission control: how much accepted work the engine holds before `POST /upload` and
//! `POST /uploads` answer 503 with Retry-After. Two bounds, both on the stream records the slowest
//! mapping has not read (each upload writes three: `uploaded`, `processed`, `notified`):
//! - a count (`--max-backlog`), which caps what a backlog can cost in disk and memory;
//! - seconds of work (`--max-backlog-seconds`): the backlog over the rate the slowest mapping has
//!   read records at lately. A photo is some 15 times the work of a tiny image, so a bound in
//!   records alone held 15 times more seconds of photos, and latency under overload with them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embedded_adapters::sqlite::{SqliteStream, Unread};

/// The seconds bound applies from this many records behind: below it, a backlog is small whatever
/// its rate, and a mapping waiting out a retry's backoff does not shut the API.
pub const MIN_RECORDS_FOR_SECONDS: u64 = 100;
/// How far back the read rate looks: longer than one batch of large photos takes, so that a mapping
/// that saves its position once a batch still shows a steady rate.
const WINDOW: Duration = Duration::from_secs(10);
/// The rate is not estimated from less than this much time with a backlog. Short: uploads are far
/// cheaper than processing, and in the first second of a burst of photos the API accepts some 25
/// seconds of their work.
const MIN_BUSY: Duration = Duration::from_millis(500);
/// Read positions are sampled at most this often (every request checks admission).
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The two bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Records of backlog (`--max-backlog`).
    pub max_records: u64,
    /// Seconds of work in the backlog (`--max-backlog-seconds`).
    pub max_seconds: Duration,
}

#[derive(Clone)]
pub struct Admission {
    stream: SqliteStream,
    /// The stream mappings (template.yaml's), by name.
    mappings: Arc<[String]>,
    limits: Limits,
    reads: Arc<Mutex<ReadRate>>,
}

impl Admission {
    pub fn new(stream: SqliteStream, mappings: Arc<[String]>, limits: Limits) -> Self {
        Admission {
            stream,
            mappings,
            limits,
            reads: Default::default(),
        }
    }

    /// Why the request is refused, or `None` to admit it. A backlog that cannot be read admits the
    /// request: the upload itself then meets whatever is wrong with the table and says so.
    pub async fn refusal(&self) -> Option<String> {
        let unread = match self.stream.unread(&self.mappings).await {
            Ok(unread) => unread,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "reading the backlog failed; admitting");
                return None;
            }
        };
        let rate = {
            let mut reads = self.reads.lock().expect("read rate lock");
            reads.observe(Instant::now(), unread);
            reads.per_second()
        };
        judge(
            unread,
            rate,
            self.limits.max_records,
            self.limits.max_seconds,
        )
    }
}

/// The decision, from the backlog and the rate it is read at (records/s, `None` while unknown).
fn judge(
    unread: Unread,
    rate: Option<f64>,
    max_records: u64,
    max_seconds: Duration,
) -> Option<String> {
    let records = unread.records();
    if records >= max_records {
        return Some(format!(
            "the engine has {records} stream records of accepted work to finish (its bound is {max_records})"
        ));
    }
    if records < MIN_RECORDS_FOR_SECONDS {
        return None;
    }
    let rate = rate?;
    let seconds = records as f64 / rate;
    (seconds >= max_seconds.as_secs_f64()).then(|| {
        if rate > 0.0 {
            format!(
                "the engine has about {seconds:.0} s of accepted work to finish ({records} stream records at {rate:.0}/s; its bound is {} s)",
                max_seconds.as_secs_f64()
            )
        } else {
            format!(
                "the engine has {records} stream records of accepted work and has not read any lately"
            )
        }
    })
}

/// The slowest mapping's read position, and the backlog, over the last [`WINDOW`], oldest first.
#[derive(Default)]
struct ReadRate {
    samples: VecDeque<Sample>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    read: u64,
    backlog: u64,
}

impl ReadRate {
    fn observe(&mut self, at: Instant, unread: Unread) {
        if self
            .samples
            .back()
            .is_some_and(|last| at.saturating_duration_since(last.at) < SAMPLE_EVERY)
        {
            return;
        }
        // Positions only move forward, except when checkpoints are reset (replay): start over.
        if self
            .samples
            .back()
            .is_some_and(|last| unread.read < last.read)
        {
            self.samples.clear();
        }
        self.samples.push_back(Sample {
            at,
            read: unread.read,
            backlog: unread.records(),
        });
        while self
            .samples
            .front()
            .is_some_and(|first| at.saturating_duration_since(first.at) > WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Records read per second while there was something to read, once that adds up to
    /// [`MIN_BUSY`]: an engine that was idle was not slow, so its idle spells do not count.
    fn per_second(&self) -> Option<f64> {
        let (mut busy, mut read) = (Duration::ZERO, 0);
        for (a, b) in self.samples.iter().zip(self.samples.iter().skip(1)) {
            if a.backlog > 0 {
                busy += b.at.saturating_duration_since(a.at);
                read += b.read - a.read;
            }
        }
        (busy >= MIN_BUSY).then(|| read as f64 / busy.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `backlog` records behind a mapping that has read to `read`.
    fn behind(read: u64, backlog: u64) -> Unread {
        Unread {
            head: read + backlog,
            read,
        }
    }

    const FIVE_S: Duration = Duration::from_secs(5);

    #[test]
    fn the_record_bound_holds_whatever_the_rate() {
        assert!(judge(behind(1000, 2000), Some(1e9), 2000, FIVE_S).is_some());
        assert!(judge(behind(1000, 2000), None, 2000, FIVE_S).is_some());
        assert!(judge(behind(1000, 1999), None, 2000, FIVE_S).is_none());
    }

    #[test]
    fn a_backlog_of_more_seconds_than_the_bound_is_refused() {
        // 600 records at 100/s: 6 s of work.
        let why = judge(behind(1000, 600), Some(100.0), 2000, FIVE_S).expect("refused");
        assert!(why.contains("about 6 s"), "{why}");
        // 400 at 100/s: 4 s.
        assert!(judge(behind(1000, 400), Some(100.0), 2000, FIVE_S).is_none());
    }

    #[test]
    fn small_backlogs_and_unknown_rates_are_judged_by_the_count_alone() {
        // A mapping waiting out a retry reads nothing, but a few records behind is no overload.
        assert!(judge(
            behind(1000, MIN_RECORDS_FOR_SECONDS - 1),
            Some(0.0),
            2000,
            FIVE_S
        )
        .is_none());
        assert!(judge(behind(1000, 1500), None, 2000, FIVE_S).is_none());
        let why = judge(
            behind(1000, MIN_RECORDS_FOR_SECONDS),
            Some(0.0),
            2000,
            FIVE_S,
        )
        .expect("refused");
        assert!(why.contains("has not read any"), "{why}");
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn the_rate_is_read_over_the_window_once_it_has_been_busy_long_enough() {
        let t0 = Instant::now();
        let mut reads = ReadRate::default();
        reads.observe(at(t0, 0), behind(0, 500));
        reads.observe(at(t0, 300), behind(30, 600));
        assert_eq!(reads.per_second(), None, "0.3 s of history is too little");
        reads.observe(at(t0, 1000), behind(100, 900));
        assert_eq!(reads.per_second(), Some(100.0));
        // Samples closer together than SAMPLE_EVERY are one sample.
        reads.observe(at(t0, 1050), behind(10_000, 900));
        assert_eq!(reads.per_second(), Some(100.0));
        // Older than the window falls out: from 1 s to 11 s, 100 to 1100 records.
        reads.observe(at(t0, 11_000), behind(1100, 900));
        assert_eq!(reads.per_second(), Some(100.0));
        assert_eq!(reads.samples.front().map(|s| s.read), Some(100));
    }

    #[test]
    fn idle_time_does_not_count_as_slow() {
        let t0 = Instant::now();
        let mut reads = ReadRate::default();
        // Eight seconds with nothing to read, then a burst read at 200 records/s.
        reads.observe(at(t0, 0), behind(1000, 0));
        reads.observe(at(t0, 8000), behind(1000, 400));
        reads.observe(at(t0, 9000), behind(1200, 600));
        assert_eq!(reads.per_second(), Some(200.0));
    }

    #[test]
    fn a_reset_of_the_checkpoints_starts_the_rate_over() {
        let t0 = Instant::now();
        let mut reads = ReadRate::default();
        reads.observe(t0, behind(500, 10));
        reads.observe(at(t0, 3000), behind(800, 10));
        assert_eq!(reads.per_second(), Some(100.0));
        reads.observe(at(t0, 4000), behind(0, 810));
        assert_eq!(reads.per_second(), None);
    }
}
