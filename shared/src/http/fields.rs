//! Request fields read the same way by several endpoint groups.

use crate::{
    domain::{DurationInput, QueueName},
    error::{Error, Result},
    ops::{Receipt, SettleCommand, SettleKind},
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

/// Where a spec-000 settlement applies: the group named by `group_id` or `subscription_id`
/// (or the one holding the message), and the delivery named by `receipt_handle`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target<'a> {
    pub(super) group_id: Option<&'a str>,
    pub(super) subscription_id: Option<&'a str>,
    pub(super) receipt_handle: Option<&'a str>,
}

impl Target<'_> {
    /// The settlement `kind` of message `message_id` at this target.
    pub(super) fn command(self, message_id: &str, kind: SettleKind) -> Result<SettleCommand> {
        Ok(SettleCommand {
            message_id: message_id.to_owned(),
            queue: None,
            group: group(self.group_id, self.subscription_id)?,
            receipt: receipt(self.receipt_handle)?,
            kind,
        })
    }
}

/// The group a spec-000 settlement names, if any.
fn group(group_id: Option<&str>, subscription_id: Option<&str>) -> Result<Option<GroupRef>> {
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
