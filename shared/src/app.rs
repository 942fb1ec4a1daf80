//! Building the service from configuration, the one place every entry point
//! (the local server, each function) gets its state from. Backends are chosen
//! by `MESSAGE_QUEUE_STORE` (and `KAFKA_BROKERS` for the log); each heavy
//! backend is behind a Cargo feature of this crate.

use std::sync::Arc;

use crate::{
    auth::Authenticator,
    config::Config,
    ops::{Backends, Service},
};

/// Bytes a request body may hold beyond the largest message: field names, headers, key.
pub const ENVELOPE_ALLOWANCE: usize = 64 * 1024;

/// The shared state of a process: the service and the token verifier.
#[derive(Debug)]
pub struct App {
    pub service: Service,
    pub auth: Authenticator,
}

/// What handlers receive.
pub type AppState = Arc<App>;

/// Why the service could not be built: the variable at fault, its value, the reason.
#[derive(Debug, thiserror::Error)]
#[error("{variable}={value}: {reason}")]
pub struct BuildError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

impl App {
    /// The service on the backends the configuration names.
    pub async fn from_config(config: Config, jwt_secret: &str) -> Result<AppState, BuildError> {
        let backends = backends(&config).await?;
        let auth = Authenticator::new(jwt_secret, &config.jwt);
        Ok(Arc::new(Self { service: Service::new(config, backends), auth }))
    }

    /// Largest request body accepted.
    pub fn body_limit(&self) -> usize {
        self.service.config.max_message_size + ENVELOPE_ALLOWANCE
    }

    /// Largest batch body accepted: 16 messages of the largest size, or 1000 of 16 KiB, whichever is more.
    pub fn batch_body_limit(&self) -> usize {
        (16 * self.service.config.max_message_size).max(1000 * 16 * 1024) + ENVELOPE_ALLOWANCE
    }
}

/// The backends of the configured store, with the log in Kafka when `KAFKA_BROKERS` is set.
async fn backends(config: &Config) -> Result<Backends, BuildError> {
    let mut backends = store_backends(config).await?;
    if let Some(kafka) = &config.kafka {
        backends.log = kafka_log(kafka, backends.meta.clone()).await?;
    }
    Ok(backends)
}

/// The Kafka log, once a metadata round trip shows the brokers answer.
#[cfg(feature = "kafka")]
async fn kafka_log(
    config: &crate::config::KafkaConfig,
    meta: Arc<dyn crate::ports::MetadataStore>,
) -> Result<Arc<dyn crate::ports::MessageLog>, BuildError> {
    use crate::ports::MessageLog;
    let fail = |reason: String| BuildError { variable: "KAFKA_BROKERS", value: config.brokers.clone(), reason };
    let options = crate::kafka::KafkaOptions {
        brokers: config.brokers.clone(),
        topic_prefix: config.topic_prefix.clone(),
        settings: config.settings.clone(),
        timeout: std::time::Duration::from_millis(config.timeout_ms),
    };
    let log = crate::kafka::KafkaLog::new(options, meta).map_err(|e| fail(e.to_string()))?;
    log.describe().await.map_err(|e| fail(format!("the Kafka brokers do not answer: {e}")))?;
    Ok(Arc::new(log))
}

#[cfg(not(feature = "kafka"))]
async fn kafka_log(
    config: &crate::config::KafkaConfig,
    _meta: Arc<dyn crate::ports::MetadataStore>,
) -> Result<Arc<dyn crate::ports::MessageLog>, BuildError> {
    Err(BuildError {
        variable: "KAFKA_BROKERS",
        value: config.brokers.clone(),
        reason: "this build has no Kafka message log".into(),
    })
}

/// The backends of the store `MESSAGE_QUEUE_STORE` names, if this build has it.
async fn store_backends(config: &Config) -> Result<Backends, BuildError> {
    let fail = |reason: String| BuildError { variable: "MESSAGE_QUEUE_STORE", value: config.store.to_string(), reason };
    match &config.store {
        #[cfg(feature = "sqlite")]
        crate::config::StoreUrl::Sqlite(path) => {
            let store =
                Arc::new(crate::embedded::SqliteStore::open(path).map_err(|e| fail(format!("cannot open: {e}")))?);
            let mut backends = Backends::all(store.clone());
            if config.log_place == crate::config::LogPlace::Files && config.kafka.is_none() {
                let dir = crate::config::LogPlace::files_beside(path);
                let log = crate::segments::SegmentLog::open(&dir).map_err(|e| BuildError {
                    variable: "MESSAGE_QUEUE_LOG",
                    value: "files".into(),
                    reason: format!(
                        "{e}; processes sharing one SQLite file keep the log in it (MESSAGE_QUEUE_LOG=store)"
                    ),
                })?;
                // Records kept in the SQLite file by an earlier version move to the files first.
                let moved = crate::segments::move_records(store.as_ref(), store.as_ref(), &log)
                    .await
                    .map_err(|e| fail(format!("cannot move records into {}: {e}", dir.display())))?;
                if moved > 0 {
                    tracing::info!(moved, "records moved from the SQLite file into {}", dir.display());
                }
                backends.log = Arc::new(log);
            }
            Ok(backends)
        }
        #[cfg(feature = "postgres")]
        crate::config::StoreUrl::Postgres(url) => {
            let pool = &config.db_pool;
            let options = crate::postgres::PoolOptions {
                size: pool.size,
                connect_timeout: std::time::Duration::from_millis(pool.timeout_ms),
                statement_timeout: std::time::Duration::from_millis(pool.statement_timeout_ms),
            };
            let store = crate::postgres::PgStore::connect(url, options).await.map_err(|e| fail(e.to_string()))?;
            let store = Arc::new(if config.kafka.is_none() { store.serving_the_log() } else { store });
            let mut backends = Backends::all(store.clone());
            backends.signals = store;
            Ok(backends)
        }
        other => Err(fail(format!("this build has no {} store", other.scheme()))),
    }
}
