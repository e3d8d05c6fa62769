//! `GET /metrics`: the local twin of the Lambda metrics the console shows (Invocations, Errors,
//! Duration, IteratorAge), per function, in Prometheus text; then the pipeline's own metrics
//! (`pipeline_metrics::ALL`), which the functions record through the `metrics` facade and, on
//! Lambda, write as CloudWatch EMF.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The label of what the API's function (template.yaml's `upload`) counts.
pub const API_FUNCTION: &str = "upload";

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub invocations: IntCounterVec,
    pub records_delivered: IntCounterVec,
    pub records_filtered: IntCounterVec,
    pub errors: IntCounterVec,
    pub dead_letters: IntCounterVec,
    /// Requests the API refused with 503 for want of capacity (backlog or buffer bytes), as
    /// Lambda's Throttles; labelled `function="upload"`.
    pub throttles: IntCounterVec,
    pub iterator_age: GaugeVec,
    pub duration: HistogramVec,
    /// What the functions recorded; `None` if another `metrics` recorder was installed first.
    emitted: Option<PrometheusHandle>,
}

/// The process's `metrics` recorder, installed by the first engine: the facade has one recorder a
/// process, so engines in one process (tests) share it, and their counts add up.
fn emitted() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    pipeline_metrics::describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the functions' metrics are not on /metrics: another recorder is installed");
                    None
                }
            }
        })
        .clone()
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &["function"]).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let invocations = counter(
            "pipeline_invocations_total",
            "Batches the function was invoked with.",
        );
        let records_delivered = counter(
            "pipeline_records_delivered_total",
            "Stream records delivered to the function (after filtering).",
        );
        let records_filtered = counter(
            "pipeline_records_filtered_total",
            "Stream records the mapping's FilterCriteria dropped.",
        );
        let errors = counter(
            "pipeline_errors_total",
            "Invocations that failed or reported batch item failures.",
        );
        let dead_letters = counter(
            "pipeline_dead_letters_total",
            "Records sent to the on-failure destination.",
        );
        let throttles = counter(
            "pipeline_throttles_total",
            "Requests refused with 503 and Retry-After: the backlog or the upload buffer is full.",
        );
        // The API's one function: its series exists from the start, at zero.
        throttles.with_label_values(&[API_FUNCTION]);
        let iterator_age = GaugeVec::new(
            Opts::new(
                "pipeline_iterator_age_seconds",
                "Age of the last record delivered when it was delivered.",
            ),
            &["function"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(iterator_age.clone()))
            .expect("unique metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "pipeline_duration_seconds",
                "Time the function took per invocation.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["function"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(duration.clone()))
            .expect("unique metric");
        Metrics {
            registry,
            invocations,
            records_delivered,
            records_filtered,
            errors,
            dead_letters,
            throttles,
            iterator_age,
            duration,
            emitted: emitted(),
        }
    }

    /// A counter of the engine's own (the webhook deliveries'), on this engine's `/metrics`.
    pub(crate) fn counter(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
        self.registry
            .register(Box::new(c.clone()))
            .expect("unique metric");
        c
    }

    /// Makes every series exist at zero, so a scrape shows the function before its first record.
    pub fn register_function(&self, function: &str) {
        for c in [
            &self.invocations,
            &self.records_delivered,
            &self.records_filtered,
            &self.errors,
            &self.dead_letters,
        ] {
            c.with_label_values(&[function]);
        }
        self.iterator_age.with_label_values(&[function]);
        self.duration.with_label_values(&[function]);
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("prometheus text encodes");
        let mut text = String::from_utf8(out).expect("prometheus text is UTF-8");
        if let Some(emitted) = &self.emitted {
            // Drains the histograms' buckets, which otherwise grow until rendered.
            emitted.run_upkeep();
            text.push_str(&emitted.render());
        }
        text
    }
}

/// What the mappings and invokers report goes to `/metrics`; the crash drill's checkpoint point
/// fires here.
pub struct Observed {
    pub metrics: Metrics,
    pub faults: crate::faults::Faults,
}

impl event_source_mapping::Observer for Observed {
    fn invoked(&self, function: &str, records: usize, iterator_age_s: f64) {
        let m = &self.metrics;
        m.invocations.with_label_values(&[function]).inc();
        m.records_delivered
            .with_label_values(&[function])
            .inc_by(records as u64);
        m.iterator_age
            .with_label_values(&[function])
            .set(iterator_age_s);
    }

    fn duration(&self, function: &str, seconds: f64) {
        self.metrics
            .duration
            .with_label_values(&[function])
            .observe(seconds);
    }

    fn error(&self, function: &str) {
        self.metrics.errors.with_label_values(&[function]).inc();
    }

    fn filtered(&self, function: &str, records: usize) {
        self.metrics
            .records_filtered
            .with_label_values(&[function])
            .inc_by(records as u64);
    }

    fn dead_lettered(&self, function: &str, records: usize) {
        self.metrics
            .dead_letters
            .with_label_values(&[function])
            .inc_by(records as u64);
    }

    fn before_checkpoint(&self) {
        self.faults
            .crash_point(crate::faults::CrashPoint::BeforeCheckpoint);
    }
}
