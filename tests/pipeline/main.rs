//! End-to-end tests over the public interfaces: HTTP, the item JSON, the mailbox folder, /metrics,
//! the stream events in events/, and the `uploader` binary itself. With `--features local/aws`
//! (`make test`), the same suite also runs on DynamoDB Local and moto (`PIPELINE_BACKEND=aws`),
//! and the Lambda bootstraps are run under a Runtime API. The web page is driven in Chromium.

#[cfg(feature = "aws")]
mod adapters;
mod admission;
mod api;
mod browser;
mod cli;
mod crash;
mod defaults;
mod direct;
mod disk;
mod events;
mod faults;
mod flood;
mod flow;
mod formats;
mod helpers;
mod hosting;
#[cfg(feature = "aws")]
mod lambda;
mod memory;
mod objects;
#[cfg(feature = "aws")]
mod queries;
mod server;
mod stand_ins;
mod webhooks;
