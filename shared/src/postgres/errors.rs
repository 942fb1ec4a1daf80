//! PostgreSQL's errors as the ports' errors: what may succeed later (a lost connection, a
//! server starting or shutting down, a full pool, a deadlock) is `Unavailable`; the rest `Failed`.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::error::StoreError;

/// SQLSTATE classes and codes after which a retry may succeed.
fn transient(code: &SqlState) -> bool {
    let c = code.code();
    // 08: connection exception; 53: insufficient resources; 57P0x: shutdown, crash, starting up.
    c.starts_with("08")
        || c.starts_with("53")
        || c.starts_with("57P")
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::QUERY_CANCELED
        || *code == SqlState::LOCK_NOT_AVAILABLE
}

/// Whether the error is one a retry may get past.
pub(super) fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    e.code().is_none_or(transient)
}

/// A driver error: without a SQLSTATE the connection itself failed.
pub(super) fn pg(e: tokio_postgres::Error) -> StoreError {
    let said = match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {} (SQLSTATE {})", db.message(), db.code().code()),
        None => format!("PostgreSQL: {e}"),
    };
    if is_unavailable(&e) { StoreError::unavailable(said) } else { StoreError::Failed(said) }
}

/// A pool error: no connection within the timeout, or none could be made.
pub(super) fn no_connection(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => pg(e),
        PoolError::Timeout(kind) => StoreError::unavailable(format!("PostgreSQL: no connection ({kind:?} timed out)")),
        other => StoreError::unavailable(format!("PostgreSQL: {other}")),
    }
}

/// Whether the error is a unique violation (a name or id taken).
pub(super) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}
