//! `uploader`: the image-upload pipeline on one machine. This crate parses the command line
//! ([`cli`]), registers the pipeline's five handlers with the local engine ([`registry`]), and
//! starts the engine or inspects its data ([`commands`]); the engine itself (`local_engine`) hosts
//! whatever template.yaml declares.

pub mod allocator;
pub mod args;
pub mod cli;
pub mod commands;
pub mod registry;
pub mod work;

pub use registry::functions;

/// The template the uploader was built with, so it works from any folder.
pub const TEMPLATE: &str = include_str!("../../template.yaml");

/// An engine over `data_dir` running [`TEMPLATE`] with the pipeline's handlers, every other
/// setting at its default.
pub fn engine_config(data_dir: impl Into<std::path::PathBuf>) -> local_engine::EngineConfig {
    let mut cfg = local_engine::EngineConfig::new(data_dir, TEMPLATE, functions());
    cfg.work_estimate = Some(std::sync::Arc::new(work::estimate));
    cfg
}
