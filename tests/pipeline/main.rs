//! End-to-end tests over the public interfaces: HTTP, the item JSON, the mailbox folder, /metrics,
//! the stream events in events/, and the `uploader` binary itself.

mod adapters;
mod api;
mod crash;
mod events;
mod faults;
mod flow;
mod helpers;
mod lambda;
mod semantics;
mod stand_ins;
