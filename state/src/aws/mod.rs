//! AWS adapters of the ports: each takes a ready SDK client and names (no env, no endpoints; those
//! are chosen in `main` or the engine's wiring).

mod dynamo;
mod s3;
mod sns;

pub use dynamo::DynamoTable;
pub use s3::S3Store;
pub use sns::SnsNotifier;
