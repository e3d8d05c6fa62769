//! The AWS adapters of the ports, and the AWS services a function reads at start (Secrets
//! Manager) or links to (CloudFront): each takes a ready SDK client and names (no environment, no
//! endpoints; those are chosen in a function's `main` or the engine's wiring). [`AwsResources`]
//! makes the clients a Lambda function's configuration names. `tests/contract.rs`
//! holds them to the contract suite on DynamoDB Local and moto.

mod cloudfront;
mod dynamo;
#[cfg(feature = "provision")]
pub mod provision;
mod resources;
mod s3;
mod secrets;
mod sns;
pub mod streams;
#[cfg(feature = "testing")]
pub mod testing;

pub use cloudfront::{expiry, CdnLinks, CloudFrontSigner, RENDITIONS_PREFIX, SIGNED_LINKS_KEPT};
pub use dynamo::{index, DynamoTable, Reads};
pub use resources::AwsResources;
pub use s3::S3Store;
pub use secrets::SecretsManager;
pub use sns::{structured_message, SnsNotifier, DOCUMENT_PROTOCOLS};
