//! DynamoDB for tests: moto's server through `infra/moto.sh --hold` (or the endpoint at
//! `AWS_ENDPOINT_URL` when one answers), one per test process, and a table of its own per test.

use std::{
    process::Child,
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
};

use shared::dynamodb::{
    Credentials, DynamoStore,
    aws_config::{self, BehaviorVersion, Region},
};

/// The endpoint of the held server (stopped when the test process ends and its input closes).
fn endpoint() -> &'static str {
    static SERVER: OnceLock<(Child, String)> = OnceLock::new();
    let (_, endpoint) = SERVER.get_or_init(|| {
        let (child, endpoint, _) = crate::infra::hold("moto.sh", false);
        assert!(endpoint.starts_with("http"), "infra/moto.sh named no endpoint: {endpoint:?}");
        (child, endpoint)
    });
    endpoint
}

/// A store on a new table of this test's own (moto keeps tables in memory: they go with it).
pub async fn store() -> DynamoStore {
    static TABLES: AtomicU32 = AtomicU32::new(0);
    let table = format!("mq-test-{}-{}", std::process::id(), TABLES.fetch_add(1, Ordering::Relaxed));
    let credentials = Credentials::new("testing", "testing", None, None, "tests");
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .load()
        .await;
    DynamoStore::open(&config, &table, true).await.expect("the table is made")
}
