//! DynamoDB for tests: moto's server through `infra/moto.sh --hold` (or the endpoint at
//! `AWS_ENDPOINT_URL` when one answers), one per test process, and a table of its own per test.

use std::{
    process::Child,
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

use shared::dynamodb::{
    Credentials, DynamoStore,
    aws_config::{self, BehaviorVersion, Region},
};

/// The held server (stopped when the test process ends and its input closes) and its endpoint.
static SERVER: Mutex<Option<(Child, String)>> = Mutex::new(None);

fn endpoint() -> String {
    let mut server = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    if server.is_none() {
        let (child, endpoint, _) = crate::infra::hold("moto.sh", false);
        assert!(endpoint.starts_with("http"), "infra/moto.sh named no endpoint: {endpoint:?}");
        *server = Some((child, endpoint));
    }
    server.as_ref().expect("held").1.clone()
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
