//! The DynamoDB rendering of the table port: `attribute_not_exists(id)` on insert, and each
//! transition as one `UpdateItem` conditioned on `#status = :from`.

use std::collections::HashMap;

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;

use state::{ImageId, Item, ItemTable, Outcome, Stall, StateError, Status, Transition};

#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
}

impl DynamoTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    fn key(id: ImageId) -> HashMap<String, AttributeValue> {
        HashMap::from([("id".to_owned(), AttributeValue::S(id.to_string()))])
    }
}

fn read(image: HashMap<String, AttributeValue>) -> Result<Item, StateError> {
    Item::from_image(image)
}

#[async_trait]
impl ItemTable for DynamoTable {
    async fn insert(&self, item: &Item) -> Result<(), StateError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.to_image()))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Err(StateError::Duplicate(item.id))
            }
            Err(e) => Err(StateError::unavailable(
                anyhow::Error::new(e).context(format!("PutItem {} into {}", item.id, self.table)),
            )),
        }
    }

    async fn get(&self, id: ImageId) -> Result<Option<Item>, StateError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("GetItem {id} from {}", self.table))
            .map_err(StateError::Unavailable)?;
        out.item.map(read).transpose()
    }

    async fn list(&self, limit: usize) -> Result<Vec<Item>, StateError> {
        // A scan has no order; gather every page, then sort newest first.
        let pages: Vec<_> = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .with_context(|| format!("Scan {}", self.table))
            .map_err(StateError::Unavailable)?;
        let mut items = pages.into_iter().map(read).collect::<Result<Vec<_>, _>>()?;
        items.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        items.truncate(limit);
        Ok(items)
    }

    async fn advance(&self, id: ImageId, t: &Transition) -> Result<Outcome, StateError> {
        let updates: HashMap<String, AttributeValue> = serde_dynamo::to_item(t.updates())
            .map_err(|e| StateError::unavailable(anyhow::anyhow!("rendering {id}: {e}")))?;
        let mut names = HashMap::from([("#history".to_owned(), "history".to_owned())]);
        let mut values = HashMap::from([
            (
                ":from".to_owned(),
                AttributeValue::S(t.from().as_str().to_owned()),
            ),
            (
                ":entry".to_owned(),
                AttributeValue::L(vec![serde_dynamo::to_attribute_value(t.history_entry())
                    .map_err(|e| StateError::unavailable(anyhow::anyhow!("{e}")))?]),
            ),
            (":none".to_owned(), AttributeValue::L(vec![])),
        ]);
        let mut sets = Vec::with_capacity(updates.len() + 1);
        for (i, (name, value)) in updates.into_iter().enumerate() {
            names.insert(format!("#a{i}"), name);
            values.insert(format!(":a{i}"), value);
            sets.push(format!("#a{i} = :a{i}"));
        }
        sets.push("#history = list_append(if_not_exists(#history, :none), :entry)".to_owned());
        let mut removes = Vec::new();
        for (i, name) in t.removes().iter().enumerate() {
            names.insert(format!("#r{i}"), (*name).to_owned());
            removes.push(format!("#r{i}"));
        }
        // `status` is among the updates; the condition names it through its own placeholder.
        names.insert("#status".to_owned(), "status".to_owned());

        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .update_expression(format!(
                "SET {} REMOVE {}",
                sets.join(", "),
                removes.join(", ")
            ))
            .condition_expression("#status = :from")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out.attributes.ok_or_else(|| {
                    StateError::unavailable(anyhow::anyhow!("UpdateItem {id} returned no item"))
                })?;
                Ok(Outcome::Applied(read(item)?))
            }
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(ccf) => {
                    let current = ccf.item.map(read).transpose()?;
                    t.classify(id, current)
                }
                other => Err(StateError::unavailable(
                    anyhow::Error::new(other).context(format!("UpdateItem {id} in {}", self.table)),
                )),
            },
            Err(e) => Err(StateError::unavailable(
                anyhow::Error::new(e).context(format!("UpdateItem {id} in {}", self.table)),
            )),
        }
    }

    async fn mark_stalled(
        &self,
        id: ImageId,
        status: Status,
        stall: &Stall,
    ) -> Result<bool, StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .update_expression("SET stalled_at = :at, stalled_by = :by, stalled_reason = :why")
            .condition_expression("#status = :status")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", AttributeValue::S(status.as_str().into()))
            .expression_attribute_values(":at", AttributeValue::N(stall.at.to_string()))
            .expression_attribute_values(":by", AttributeValue::S(stall.function.clone()))
            .expression_attribute_values(":why", AttributeValue::S(stall.reason.clone()))
            .send()
            .await;
        conditional(result, || {
            format!("UpdateItem (stall) {id} in {}", self.table)
        })
    }

    async fn clear_stalled(&self, id: ImageId) -> Result<bool, StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .update_expression("REMOVE stalled_at, stalled_by, stalled_reason")
            .condition_expression("attribute_exists(stalled_at)")
            .send()
            .await;
        conditional(result, || {
            format!("UpdateItem (redrive) {id} in {}", self.table)
        })
    }
}

/// A conditional write's result: applied, or the condition was false (`false`), or an outage.
fn conditional<T>(
    result: Result<T, SdkError<UpdateItemError>>,
    what: impl FnOnce() -> String,
) -> Result<bool, StateError> {
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
            Ok(false)
        }
        Err(e) => Err(StateError::unavailable(
            anyhow::Error::new(e).context(what()),
        )),
    }
}
