use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// JSON log lines to `sink`, filtered by `RUST_LOG` (default `default_filter`). Call once.
pub fn init<W>(default_filter: &str, sink: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(sink)
        .with_current_span(false)
        .try_init();
}
