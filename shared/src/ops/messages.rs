//! Reading a message back by id: the id locates the record in the log.

use super::{Service, check_access};
use crate::{
    auth::Principal,
    domain::{MessageId, Timestamp},
    error::{Error, Result},
    ports::{Queue, Record},
};

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    /// In the log, waiting for delivery.
    Published,
    /// Its TTL passed before it was finished.
    Expired,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Expired => "expired",
        }
    }
}

/// A message with its queue and state.
#[derive(Debug, Clone)]
pub struct MessageView {
    pub id: MessageId,
    pub queue: Queue,
    pub record: Record,
    pub status: MessageStatus,
}

impl Service {
    /// The message with that id; ids that do not parse are unknown ids.
    pub async fn message(&self, caller: &Principal, id_text: &str) -> Result<MessageView> {
        let not_found = || Error::MessageNotFound { message_id: id_text.to_owned() };
        let id = MessageId::parse(id_text).ok_or_else(not_found)?;
        let queue = self.meta.queue_by_id(id.queue_id).await?.ok_or_else(not_found)?;
        check_access(caller, &queue)?;
        let record = self.log.read(id).await?.ok_or_else(not_found)?;
        let status =
            if record.expires_at() <= Timestamp::now() { MessageStatus::Expired } else { MessageStatus::Published };
        Ok(MessageView { id, queue, record, status })
    }
}
