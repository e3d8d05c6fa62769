//! Resources made as template.yaml declares them (feature `provision`): the items table with its
//! keys, global secondary indexes and stream, on DynamoDB Local for tests and
//! `make run-dynamodb`.

use anyhow::Context;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use sam_template::{KeyElement, TableSpec};

fn keys(schema: &[KeyElement]) -> anyhow::Result<Vec<KeySchemaElement>> {
    schema
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .context("a key schema element")
        })
        .collect()
}

/// Creates table `name` as `spec` describes it (billed per request, as the template's is).
pub async fn create_table(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    spec: &TableSpec,
) -> anyhow::Result<()> {
    let attributes = spec
        .attributes
        .iter()
        .map(|(attribute, kind)| {
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
                .context("an attribute definition")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let indexes = spec
        .indexes
        .iter()
        .map(|index| {
            GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(keys(&index.key_schema)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(index.projection.as_str()))
                        .build(),
                )
                .build()
                .context("a global secondary index")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut create = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(keys(&spec.key_schema)?));
    if !indexes.is_empty() {
        create = create.set_global_secondary_indexes(Some(indexes));
    }
    if let Some(view) = &spec.stream_view_type {
        create = create.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()
                .context("a stream specification")?,
        );
    }
    create
        .send()
        .await
        .with_context(|| format!("CreateTable {name}"))?;
    Ok(())
}
