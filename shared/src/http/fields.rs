//! Request fields read the same way by several endpoint groups.

use crate::{
    domain::{DurationInput, QueueName},
    error::{Error, Result},
    ops::Receipt,
    ports::GroupRef,
};

pub(super) fn parse_queue(field: &str, name: &str) -> Result<QueueName> {
    QueueName::parse(name).map_err(|e| Error::invalid(field, e))
}

/// A group or consumer id: 1 to 255 bytes, no control characters.
pub(super) fn identifier(field: &str, s: &str) -> Result<String> {
    if s.is_empty() || s.len() > 255 || s.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must be 1 to 255 bytes without control characters"));
    }
    Ok(s.to_owned())
}

pub(super) fn receipt(s: Option<&str>) -> Result<Option<Receipt>> {
    s.map(|s| {
        Receipt::parse(s).ok_or_else(|| Error::invalid("receipt_handle", "is not a receipt handle this service issued"))
    })
    .transpose()
}

/// The group a spec-000 settlement names, if any.
pub(super) fn group(group_id: Option<&str>, subscription_id: Option<&str>) -> Result<Option<GroupRef>> {
    match (group_id, subscription_id) {
        (Some(_), Some(_)) => Err(Error::invalid("group_id", "name a group_id or a subscription_id, not both")),
        (Some(g), None) => Ok(Some(GroupRef::Consumers(identifier("group_id", g)?))),
        (None, Some(s)) => Ok(Some(GroupRef::Subscription(identifier("subscription_id", s)?))),
        (None, None) => Ok(None),
    }
}

/// A request duration in whole milliseconds, at least one.
pub(super) fn duration_ms(field: &str, d: &DurationInput) -> Result<u64> {
    let ns = d.nanos().map_err(|e| Error::invalid(field, e))?;
    if ns < 1_000_000 {
        return Err(Error::invalid(field, "must be at least 1ms"));
    }
    Ok(ns / 1_000_000)
}

/// Milliseconds as a Go `time.Duration` nanosecond string, as spec 002 writes durations.
pub(super) fn nanos(ms: u64) -> String {
    (u128::from(ms) * 1_000_000).to_string()
}
