//! Hosting the template's functions: each function's handler is built from its configuration
//! (its `Environment`, resolved, plus what Lambda's runtime sets) and attached to its event
//! sources: API routes, stream mappings, bucket notifications, queue mappings. A function whose
//! binary has no registered handler, an event of a kind its handler does not take, and a source
//! the engine does not have are refused at start-up, naming the function and the event.
//!
//! A variable whose value names a resource the engine does not host (a CloudFront distribution,
//! say) is left unset and listed ([`Hosted::unset`]); a function whose configuration then refuses
//! to start is refused saying which variable was left unset and why.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use config_vars::Vars;
use embedded_adapters::sqlite::{Database, QueuePolicy, SqliteStream};
use event_source_mapping::async_invoke::{AsyncInvoker, AsyncRuntime};
use event_source_mapping::queue::{QueuePoller, QueueRuntime};
use event_source_mapping::{Backoff, Dispatcher, MappingRuntime, Observer, Target};
use sam_template::{Function, Resource, Source, Template, Unset};
use tokio::sync::Mutex;

use crate::bucket::Notified;
use crate::error::{EngineError, HostError};
use crate::failure_queue::{FailureQueue, Given, Source as FailureSource};
use crate::host::{Handler, Registry};
use crate::http::ApiRoute;
use crate::resources::{LocalResources, Site};
use crate::runner::{self, Runner};

/// What the functions are attached with.
pub struct Host<'a> {
    pub template: &'a Template,
    pub registry: &'a Registry,
    pub resources: &'a Arc<LocalResources>,
    pub site: &'a Site,
    /// Memory overrides by binary name.
    pub memory_mb: &'a BTreeMap<String, u64>,
    pub db: &'a Database,
    pub stream: &'a SqliteStream,
    pub observer: Arc<dyn Observer>,
    pub backoff: Backoff,
}

/// The functions, attached.
#[derive(Default)]
pub struct Hosted {
    pub routes: Vec<ApiRoute>,
    pub runners: Vec<Arc<dyn Runner>>,
    /// The queue mappings' runners (also in `runners`): a redrive consumes them first.
    pub failure_queues: Vec<Arc<dyn Runner>>,
    /// The bucket's notification rules, each with the asynchronous queue of its function.
    pub bucket_rules: Vec<Notified>,
    /// The stream mappings, whose slowest reader admission control measures the backlog by.
    pub stream_mappings: Vec<String>,
    /// The asynchronous queues (their dead letters are events, which a redrive queues again).
    pub async_queues: BTreeSet<String>,
    /// Every function that is invoked by something other than the API, by binary name.
    pub invoked: BTreeSet<String>,
    /// The variables left unset because they name what the engine does not host, with their
    /// function's logical id.
    pub unset: Vec<(String, Unset)>,
}

pub async fn attach(host: &Host<'_>) -> Result<Hosted, EngineError> {
    let sources = failure_sources(host.template);
    let mut hosted = Hosted::default();
    for function in &host.template.functions {
        attach_function(host, function, &sources, &mut hosted)
            .await
            .map_err(|why| EngineError::Function {
                function: function.logical_id.clone(),
                why,
            })?;
    }
    Ok(hosted)
}

async fn attach_function(
    host: &Host<'_>,
    function: &Function,
    sources: &BTreeMap<String, BTreeMap<String, FailureSource>>,
    hosted: &mut Hosted,
) -> Result<(), HostError> {
    let (vars, unset) = environment(host, function)?;
    let resources: Arc<dyn state::Resources> = host.resources.clone();
    let handler = host
        .registry
        .build(&function.binary, Vars::owned(vars), resources)
        .await
        .map_err(|e| match e {
            HostError::Config(error) => match unset
                .iter()
                .find(|u| error.keys().contains(&u.key.as_str()))
            {
                Some(unset) => HostError::NeedsUnhosted {
                    error: Box::new(error),
                    unset: Box::new(unset.clone()),
                },
                None => HostError::Config(error),
            },
            other => other,
        })?;
    hosted
        .unset
        .extend(unset.into_iter().map(|u| (function.logical_id.clone(), u)));
    let mut invoker: Option<Arc<AsyncInvoker>> = None;
    for event in function.events.iter().filter(|e| e.enabled) {
        let wrong_kind = |source_kind| HostError::WrongKind {
            event: event.name.clone(),
            binary: function.binary.clone(),
            source_kind,
            handler_kind: handler.kind(),
        };
        let not_ours = |name: &str, kind| HostError::NotOurs {
            event: event.name.clone(),
            name: name.to_owned(),
            kind,
        };
        match (&event.source, &handler) {
            (Source::Api(route), Handler::Api(f)) => hosted.routes.push(ApiRoute {
                route: route.clone(),
                function: f.clone(),
            }),
            (Source::Stream { table, mapping }, Handler::Stream(f)) => {
                if host.resources_kind(table) != Some("table") {
                    return Err(not_ours(table, "table"));
                }
                let dispatcher = Dispatcher::new(
                    Target::new(function.binary.clone(), f.clone()),
                    Arc::new(mapping.clone()),
                    MappingRuntime {
                        source: Arc::new(host.stream.clone()),
                        checkpoints: Arc::new(host.stream.clone()),
                        observer: host.observer.clone(),
                        backoff: host.backoff,
                    },
                );
                hosted.runners.push(Arc::new(runner::Mapping {
                    name: mapping.name.clone(),
                    changes: dispatcher.source().subscribe(),
                    dispatcher: Arc::new(Mutex::new(dispatcher)),
                }));
                hosted.stream_mappings.push(mapping.name.clone());
            }
            (Source::Bucket { bucket, rule }, Handler::Async(f)) => {
                if host.resources_kind(bucket) != Some("bucket") {
                    return Err(not_ours(bucket, "bucket"));
                }
                let config = Arc::new(function.async_config.clone());
                if invoker.is_none() {
                    let made = Arc::new(AsyncInvoker::new(
                        Target::new(function.binary.clone(), f.clone()),
                        config.clone(),
                        AsyncRuntime {
                            queue: Arc::new(host.db.clone()),
                            observer: host.observer.clone(),
                            backoff: host.backoff,
                        },
                    ));
                    hosted.runners.push(Arc::new(runner::Invoker {
                        invoker: made.clone(),
                        queued: host.db.subscribe_queue(),
                    }));
                    hosted.async_queues.insert(config.name.clone());
                    invoker = Some(made);
                }
                hosted.bucket_rules.push(Notified {
                    rule: rule.clone(),
                    queue: config.name.clone(),
                });
            }
            (Source::Queue(mapping), Handler::Queue(f)) => {
                let Some(Resource::Queue(spec)) = host.template.resources.get(&mapping.queue)
                else {
                    return Err(not_ours(&mapping.queue, "queue"));
                };
                let sources = sources.get(&mapping.queue).cloned().unwrap_or_default();
                let queue = FailureQueue {
                    stream: host.stream.clone(),
                    policy: QueuePolicy {
                        sources: sources.keys().cloned().collect(),
                        visibility_timeout: spec.visibility_timeout,
                        max_receive_count: spec.redrive.as_ref().map(|r| r.max_receive_count),
                    },
                    sources,
                    region: host.site.region.clone(),
                    stream_arn: host.site.stream_arn.clone(),
                };
                let poller = QueuePoller::new(
                    Target::new(function.binary.clone(), f.clone()),
                    Arc::new(mapping.clone()),
                    QueueRuntime {
                        queue: Arc::new(queue),
                        observer: host.observer.clone(),
                    },
                );
                let runner: Arc<dyn Runner> = Arc::new(runner::Queue(Arc::new(poller)));
                hosted.failure_queues.push(runner.clone());
                hosted.runners.push(runner);
            }
            (Source::Api(_), _) => return Err(wrong_kind("Api")),
            (Source::Stream { .. }, _) => return Err(wrong_kind("DynamoDB")),
            (Source::Bucket { .. }, _) => return Err(wrong_kind("S3")),
            (Source::Queue(_), _) => return Err(wrong_kind("SQS")),
        }
        if !matches!(event.source, Source::Api(_)) {
            hosted.invoked.insert(function.binary.clone());
        }
    }
    Ok(())
}

/// What the function's configuration reads: its template `Environment`, resolved, and what
/// Lambda's runtime sets beside it (`AWS_LAMBDA_FUNCTION_NAME`,
/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, `AWS_REGION`). For a function on a stream, the engine adds
/// `BATCH_CONCURRENCY`: as many records as the largest batch (or the machine's cores) are worked
/// on at once, so that a batch's writes share the database's group commit (on one core: 795 ->
/// 1,104 tiny items/s); memory stays bounded by the process step's own pool.
fn environment(
    host: &Host,
    function: &Function,
) -> Result<(BTreeMap<String, String>, Vec<Unset>), HostError> {
    let resolved = host
        .template
        .environment(function, host.resources.as_ref())
        .map_err(HostError::Environment)?;
    let mut vars = resolved.vars;
    vars.insert("AWS_LAMBDA_FUNCTION_NAME".into(), function.binary.clone());
    vars.insert("AWS_REGION".into(), host.site.region.clone());
    let memory = host
        .memory_mb
        .get(&function.binary)
        .copied()
        .or(function.memory_size);
    if let Some(mb) = memory {
        vars.insert("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), mb.to_string());
    }
    let largest_batch = function
        .events
        .iter()
        .filter_map(|e| match &e.source {
            Source::Stream { mapping, .. } => Some(mapping.batch_size),
            _ => None,
        })
        .max();
    if let Some(batch) = largest_batch {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        vars.insert("BATCH_CONCURRENCY".into(), cores.max(batch).to_string());
    }
    Ok((vars, resolved.unset))
}

/// For each queue, the mappings and invokers whose on-failure destination it is.
fn failure_sources(template: &Template) -> BTreeMap<String, BTreeMap<String, FailureSource>> {
    let mut by_queue: BTreeMap<String, BTreeMap<String, FailureSource>> = BTreeMap::new();
    for f in &template.functions {
        let source = |given| FailureSource {
            function: f.binary.clone(),
            given,
        };
        for event in &f.events {
            if let Source::Stream { mapping, .. } = &event.source {
                if let Some(queue) = &mapping.on_failure {
                    by_queue
                        .entry(queue.clone())
                        .or_default()
                        .insert(mapping.name.clone(), source(Given::Records));
                }
            }
        }
        let notified = f
            .events
            .iter()
            .any(|e| matches!(e.source, Source::Bucket { .. }));
        if let (true, Some(queue)) = (notified, &f.async_config.on_failure) {
            by_queue
                .entry(queue.clone())
                .or_default()
                .insert(f.async_config.name.clone(), source(Given::Events));
        }
    }
    by_queue
}

impl Host<'_> {
    fn resources_kind(&self, logical_id: &str) -> Option<&'static str> {
        match self.template.resources.get(logical_id)? {
            Resource::Table(_) => Some("table"),
            Resource::Bucket(_) => Some("bucket"),
            _ => None,
        }
    }
}
