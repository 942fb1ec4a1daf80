//! The one error type of the service. Each variant knows its status code and
//! its `error` code; `http::error` writes it as `{"error","message","details"}`.

use serde_json::{Value, json};

/// Result of an operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything an operation or a request can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// 400: the body is not JSON.
    #[error("Request body is not valid JSON")]
    InvalidJson { reason: String, line: usize, column: usize },
    /// 400: a field is missing, of the wrong type or out of range.
    #[error("Invalid request")]
    InvalidRequest { field: String, issue: String },
    /// 400: the message content itself is missing or unusable.
    #[error("Invalid message format")]
    InvalidMessage { field: String, issue: String },
    /// 401: no token, or one that is malformed, expired or forged.
    #[error("Authentication required")]
    Unauthorized { reason: String, presented: bool },
    /// 403: the caller may not do this.
    #[error("Operation not permitted")]
    Forbidden { reason: String },
    /// 404: no such queue.
    #[error("Queue not found")]
    QueueNotFound { queue: String },
    /// 404: no such topic (the `/api/v1` name of a queue).
    #[error("Topic not found")]
    TopicNotFound { topic: String },
    /// 404: no such message.
    #[error("Message not found")]
    MessageNotFound { message_id: String },
    /// 404: no such subscription.
    #[error("Subscription not found")]
    SubscriptionNotFound { subscription_id: String },
    /// 404: no such route.
    #[error("No such endpoint")]
    RouteNotFound { method: String, path: String },
    /// 405: the route exists but not for this method.
    #[error("Method not allowed")]
    MethodNotAllowed { method: String, path: String },
    /// 409: a topic of that name exists.
    #[error("Topic already exists")]
    TopicExists { topic: String },
    /// 409: the message's delivery to the group is not in a state that allows this
    /// (`code`: `not_delivered`, `already_settled` or `lease_expired`).
    #[error("The message's delivery does not allow this")]
    DeliveryConflict {
        code: &'static str,
        reason: String,
        message_id: String,
        group: String,
        state: Option<&'static str>,
    },
    /// 429: a rate or concurrency limit holds.
    #[error("Rate limit exceeded")]
    RateLimited { limit: u64, remaining: u64, reset_time: crate::domain::Timestamp, reason: String },
    /// 429: the queue holds `x-max-length` messages; publishing waits for consumers.
    #[error("Queue is full")]
    QueueFull { queue: String, max_length: u64, message_count: u64 },
    /// 409: the state changed under the request.
    #[error("Conflict")]
    Conflict { reason: String },
    /// 408: the body did not arrive within `MESSAGE_QUEUE_BODY_TIMEOUT`.
    #[error("Request timeout")]
    RequestTimeout { limit_ms: u64 },
    /// 413: the body or the message is larger than allowed.
    #[error("Payload too large")]
    PayloadTooLarge { limit: u64, size: Option<u64> },
    /// 415: the body is not `application/json`.
    #[error("Unsupported media type")]
    UnsupportedMediaType { content_type: String },
    /// 503: the storage backend cannot be reached, is overloaded or throttles; retry after `retry_after_secs`.
    #[error("Storage backend unavailable")]
    Unavailable { reason: String, retry_after_secs: u64 },
    /// A request the HTTP framework refused before a handler saw it, with its status.
    #[error("Request refused")]
    Rejected { status: u16, reason: String },
    /// 500: a bug; the details are logged, not answered.
    #[error("Internal error")]
    Internal { reason: String },
}

impl Error {
    pub fn invalid(field: impl Into<String>, issue: impl Into<String>) -> Self {
        Self::InvalidRequest { field: field.into(), issue: issue.into() }
    }

    pub fn invalid_message(field: impl Into<String>, issue: impl Into<String>) -> Self {
        Self::InvalidMessage { field: field.into(), issue: issue.into() }
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidJson { .. } | Self::InvalidRequest { .. } | Self::InvalidMessage { .. } => 400,
            Self::Unauthorized { .. } => 401,
            Self::Forbidden { .. } => 403,
            Self::QueueNotFound { .. }
            | Self::TopicNotFound { .. }
            | Self::MessageNotFound { .. }
            | Self::SubscriptionNotFound { .. }
            | Self::RouteNotFound { .. } => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::TopicExists { .. } | Self::Conflict { .. } | Self::DeliveryConflict { .. } => 409,
            Self::RateLimited { .. } | Self::QueueFull { .. } => 429,
            Self::RequestTimeout { .. } => 408,
            Self::PayloadTooLarge { .. } => 413,
            Self::UnsupportedMediaType { .. } => 415,
            Self::Internal { .. } => 500,
            Self::Unavailable { .. } => 503,
            Self::Rejected { status, .. } => *status,
        }
    }

    /// The machine-readable `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson { .. } => "invalid_json",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::InvalidMessage { .. } => "invalid_message",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::QueueNotFound { .. } => "queue_not_found",
            Self::TopicNotFound { .. } => "topic_not_found",
            Self::MessageNotFound { .. } => "message_not_found",
            Self::SubscriptionNotFound { .. } => "subscription_not_found",
            Self::RouteNotFound { .. } => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::TopicExists { .. } => "topic_exists",
            Self::Conflict { .. } => "conflict",
            Self::DeliveryConflict { code, .. } => code,
            Self::RateLimited { .. } => "rate_limit_exceeded",
            Self::QueueFull { .. } => "queue_full",
            Self::RequestTimeout { .. } => "request_timeout",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::Unavailable { .. } => "service_unavailable",
            Self::Internal { .. } => "internal_error",
            Self::Rejected { status, .. } => match status {
                404 => "not_found",
                405 => "method_not_allowed",
                408 => "request_timeout",
                411 => "length_required",
                413 => "payload_too_large",
                414 => "uri_too_long",
                415 => "unsupported_media_type",
                431 => "headers_too_large",
                503 => "service_unavailable",
                500.. => "internal_error",
                _ => "invalid_request",
            },
        }
    }

    /// The `details` object.
    pub fn details(&self) -> Value {
        match self {
            Self::InvalidJson { reason, line, column } => json!({"issue": reason, "line": line, "column": column}),
            Self::InvalidRequest { field, issue } | Self::InvalidMessage { field, issue } => {
                json!({"field": field, "issue": issue})
            }
            Self::Unauthorized { reason, .. }
            | Self::Forbidden { reason }
            | Self::Conflict { reason }
            | Self::Rejected { reason, .. } => {
                json!({"reason": reason})
            }
            Self::Unavailable { retry_after_secs, .. } => {
                json!({"reason": "the storage backend did not answer; retry later", "retry_after": retry_after_secs})
            }
            Self::QueueNotFound { queue } => json!({"queue": queue}),
            Self::TopicNotFound { topic } | Self::TopicExists { topic } => json!({"topic": topic}),
            Self::MessageNotFound { message_id } => json!({"message_id": message_id}),
            Self::SubscriptionNotFound { subscription_id } => json!({"subscription_id": subscription_id}),
            Self::RouteNotFound { method, path } | Self::MethodNotAllowed { method, path } => {
                json!({"method": method, "path": path})
            }
            Self::PayloadTooLarge { limit, size } => json!({"limit": limit, "size": size}),
            Self::RequestTimeout { limit_ms } => {
                json!({"limit_ms": limit_ms, "reason": "the request body did not arrive in time"})
            }
            Self::UnsupportedMediaType { content_type } => {
                json!({"content_type": content_type, "expected": "application/json"})
            }
            Self::Internal { .. } => json!({}),
            Self::QueueFull { queue, max_length, message_count } => {
                json!({"queue": queue, "max_length": max_length, "message_count": message_count})
            }
            Self::DeliveryConflict { reason, message_id, group, state, .. } => {
                json!({"message_id": message_id, "group": group, "state": state, "reason": reason})
            }
            Self::RateLimited { limit, remaining, reset_time, reason } => {
                json!({"limit": limit, "remaining": remaining, "reset_time": reset_time, "reason": reason})
            }
        }
    }

    /// The body of an error answer: `{"error", "message", "details"}`, built here and nowhere else.
    pub fn body(&self) -> Value {
        json!({"error": self.code(), "message": self.to_string(), "details": self.details()})
    }

    /// The body of one failed item of a batch: the error's body, with the item's `status` and the
    /// fields naming it (`index`, `message_id`) first.
    pub fn item_body(&self, naming: Value) -> Value {
        let mut item = naming;
        item["status"] = json!(self.status());
        if let (Value::Object(item), Value::Object(body)) = (&mut item, self.body()) {
            item.extend(body);
        }
        item
    }

    /// On `/api/v1` paths a queue is called a topic.
    pub fn as_topic(self) -> Self {
        match self {
            Self::QueueNotFound { queue } => Self::TopicNotFound { topic: queue },
            other => other,
        }
    }
}

/// How long a client should wait before retrying when a backend gave no hint.
pub const DEFAULT_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Errors of a storage port, turned into [`Error`] in one place.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend cannot be reached, is overloaded or throttles: the request may succeed later.
    #[error("unavailable: {reason}")]
    Unavailable { reason: String, retry_after: Option<std::time::Duration> },
    /// The backend answered, but with something unusable (damaged data, a broken invariant).
    #[error("failed: {0}")]
    Failed(String),
    /// The backend refuses the request itself (a record larger than it takes, a replication
    /// factor it cannot give): asking again fails again. `field` names what it refused, as the
    /// API calls it (`message`, `replication`, ...).
    #[error("refused ({field}): {reason}")]
    Refused { field: &'static str, reason: String },
}

impl StoreError {
    /// An outage with no hint of when it ends.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable { reason: reason.into(), retry_after: None }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::Internal { reason: "record vanished".into() },
            StoreError::Conflict(reason) => Self::Conflict { reason },
            StoreError::Unavailable { reason, retry_after } => Self::Unavailable {
                reason,
                retry_after_secs: retry_after.unwrap_or(DEFAULT_RETRY_AFTER).as_secs_f64().ceil().max(1.0) as u64,
            },
            StoreError::Failed(reason) => Self::Internal { reason },
            StoreError::Refused { field: "message", reason } => Self::invalid_message("message", reason),
            StoreError::Refused { field, reason } => Self::invalid(field, reason),
        }
    }
}
