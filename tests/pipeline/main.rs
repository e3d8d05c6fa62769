//! End-to-end tests over the public interfaces: HTTP, the item JSON, the mailbox folder, /metrics,
//! the stream events in events/, and the `uploader` binary itself. With `--features local/aws`
//! (`make test`), the same suite also runs on DynamoDB Local and moto (`PIPELINE_BACKEND=aws`),
//! and the Lambda bootstraps are run under a Runtime API.

#[cfg(feature = "aws")]
mod adapters;
mod api;
mod crash;
mod events;
mod faults;
mod flow;
mod helpers;
#[cfg(feature = "aws")]
mod lambda;
mod memory;
mod stand_ins;
