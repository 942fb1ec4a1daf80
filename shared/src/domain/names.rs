//! Queue names, routing keys and routing-key patterns.

use std::fmt;

/// Longest queue name, in bytes (Kafka's topic-name limit).
pub const MAX_QUEUE_NAME: usize = 249;
/// Longest routing key, in bytes (AMQP's short-string limit).
pub const MAX_ROUTING_KEY: usize = 255;

/// A queue (topic) name: 1 to 249 bytes of `[A-Za-z0-9._-]`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueueName(String);

impl QueueName {
    /// Parses a name, saying what is wrong with it when it is not one.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.len() > MAX_QUEUE_NAME {
            return Err(format!("must be at most {MAX_QUEUE_NAME} bytes, got {}", s.len()));
        }
        if s == "." || s == ".." {
            return Err("must not be '.' or '..'".into());
        }
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
            return Err(format!("may hold only letters, digits, '.', '_' and '-', found {c:?}"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message's routing key: `.`-separated words, at most 255 bytes, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutingKey(String);

impl RoutingKey {
    pub fn parse(s: &str) -> Result<Self, String> {
        check_key_text(s)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A subscription's routing pattern: AMQP topic rules, where `*` stands for
/// exactly one word and `#` for zero or more, each only as a whole word.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoutingPattern(String);

impl RoutingPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        check_key_text(s)?;
        for word in s.split('.') {
            if word.len() > 1 && (word.contains('*') || word.contains('#')) {
                return Err(format!("'*' and '#' must stand alone between dots, found {word:?}"));
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// The pattern that matches every key.
    pub fn all() -> Self {
        Self("#".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_conversions {
    ($($t:ident),*) => {$(
        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
    )*};
}
string_conversions!(QueueName, RoutingKey, RoutingPattern);

fn check_key_text(s: &str) -> Result<(), String> {
    if s.len() > MAX_ROUTING_KEY {
        return Err(format!("must be at most {MAX_ROUTING_KEY} bytes, got {}", s.len()));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_follow_kafka_topic_rules() {
        for ok in ["delivery.events", "a", "A-b_c.9", &"x".repeat(249)] {
            assert!(QueueName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "é", &"x".repeat(250)] {
            assert!(QueueName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_need_wildcards_as_whole_words() {
        for ok in ["#", "*", "delivery.*", "a.#.b", "", "a.b"] {
            assert!(RoutingPattern::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a*", "a.b#", "*#", "a.\n"] {
            assert!(RoutingPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
