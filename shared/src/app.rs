//! Building the service from configuration: the state every entry point shares.

use std::sync::Arc;

use crate::{
    auth::Authenticator,
    config::Config,
    embedded::SqliteStore,
    error::StoreError,
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

impl App {
    /// The service on the embedded SQLite file in the configured data directory.
    pub fn embedded(config: Config, jwt_secret: &str) -> Result<AppState, StoreError> {
        let store = Arc::new(SqliteStore::open(&config.data_dir.join("mq.sqlite3"))?);
        let auth = Authenticator::new(jwt_secret, &config.jwt);
        let backends = Backends::all(store);
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
