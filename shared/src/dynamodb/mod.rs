//! The metadata ports on DynamoDB, through the AWS SDK (its standard credential chain, region,
//! `AWS_ENDPOINT_URL` and standard retry mode): one table of string keys `pk` and `sk`, every
//! item type under a key prefix of its own (docs/dynamodb.md). Races are settled in the table,
//! with condition expressions and transactions.
//!
//! - [`meta`]: queues and subscriptions.

mod meta;

/// The AWS SDK's configuration and credentials, for tests that name their endpoint.
pub use aws_config;
pub use aws_sdk_dynamodb::config::Credentials;

use std::{collections::HashMap, time::Duration};

use aws_sdk_dynamodb::{
    Client,
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    },
};

use crate::{error::StoreError, ports::StoreResult};

/// One item's attributes.
type Item = HashMap<String, AttributeValue>;

/// The metadata store on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// A client from the environment's AWS settings for `table`; with `create_missing`, makes
    /// the table (on demand capacity) when it does not exist, as local runs and tests need.
    pub async fn connect(table: &str, create_missing: bool) -> StoreResult<Self> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::open(&config, table, create_missing).await
    }

    /// The same, with the AWS settings given.
    pub async fn open(config: &aws_config::SdkConfig, table: &str, create_missing: bool) -> StoreResult<Self> {
        let store = Self { client: Client::new(config), table: table.to_owned() };
        match store.client.describe_table().table_name(table).send().await {
            Ok(_) => {}
            Err(e) if code(&e) == Some("ResourceNotFoundException") && create_missing => store.create_table().await?,
            Err(e) if code(&e) == Some("ResourceNotFoundException") => {
                return Err(StoreError::Failed(format!("the DynamoDB table {table} does not exist")));
            }
            Err(e) => return Err(store_error("describing the table", e)),
        }
        Ok(store)
    }

    async fn create_table(&self) -> StoreResult<()> {
        let key = |name: &str, kind| {
            KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(|e| failed("a key", &e))
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| failed("an attribute", &e))
        };
        let made = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .attribute_definitions(attribute("pk")?)
            .attribute_definitions(attribute("sk")?)
            .send()
            .await;
        match made {
            Ok(_) => {}
            // Another process made it first.
            Err(e) if code(&e) == Some("ResourceInUseException") => {}
            Err(e) => return Err(store_error("creating the table", e)),
        }
        for _ in 0..600 {
            let described = self.client.describe_table().table_name(&self.table).send().await;
            let status = described.map_err(|e| store_error("describing the table", e))?;
            if status.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(StoreError::unavailable(format!("the DynamoDB table {} did not become active within a minute", self.table)))
    }
}

/// The error code of a service's answer (`ConditionalCheckFailedException`, ...).
fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.as_service_error().and_then(ProvideErrorMetadata::code)
}

/// An SDK error as the port's: throttling that outlasted the SDK's retries, and failures to reach
/// the service, may pass; anything else fails.
fn store_error<E, R>(what: &str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let passing = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(_) => matches!(
            code(&e),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "LimitExceededException"
            )
        ),
        _ => false,
    };
    let reason = format!("{what}: {}", DisplayErrorContext(&e));
    if passing {
        StoreError::Unavailable { reason, retry_after: Some(Duration::from_secs(1)) }
    } else {
        StoreError::Failed(reason)
    }
}

fn failed(what: &str, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Failed(format!("{what}: {e}"))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A string attribute of a stored item.
fn get_s<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Failed(format!("a stored item has no text {name}"))),
    }
}

/// A string attribute that may be absent.
fn get_opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

/// A number attribute of a stored item.
fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> StoreResult<T> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => {
            v.parse().map_err(|_| StoreError::Failed(format!("stored {name} {v:?} is no number")))
        }
        _ => Err(StoreError::Failed(format!("a stored item has no number {name}"))),
    }
}
