//! Which messages a subscription selects: AMQP topic patterns on `.`-separated
//! routing keys (`*` exactly one word, `#` zero or more), an exact key for
//! direct routing, `#` for fanout, and header matching with `x-match` all or any.

use serde_json::{Map, Value};

use crate::domain::RoutingPattern;

impl RoutingPattern {
    /// Whether a routing key matches, by RabbitMQ's topic-exchange rules.
    pub fn matches(&self, key: &str) -> bool {
        let pattern: Vec<&str> = self.as_str().split('.').collect();
        let words: Vec<&str> = key.split('.').collect();
        matches_words(&pattern, &words)
    }
}

fn matches_words(pattern: &[&str], words: &[&str]) -> bool {
    match pattern.split_first() {
        None => words.is_empty(),
        Some((&"#", rest)) => (0..=words.len()).any(|skip| matches_words(rest, &words[skip..])),
        Some((&p, rest)) => match words.split_first() {
            Some((&w, more)) => (p == "*" || p == w) && matches_words(rest, more),
            None => false,
        },
    }
}

/// Header routing: `all` needs every listed header equal, `any` at least one
/// (RabbitMQ's headers exchange; names starting with `x-` are not compared).
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderMatch {
    pub any: bool,
    pub headers: Map<String, Value>,
    /// The filter as it was given, answered back unchanged.
    filter: Map<String, Value>,
}

impl HeaderMatch {
    /// Reads a filter: its `x-match` (default `all`) and the headers to compare.
    pub fn parse(filter: &Map<String, Value>) -> Result<Self, String> {
        let any = match filter.get("x-match").map(|v| v.as_str()) {
            None | Some(Some("all")) => false,
            Some(Some("any")) => true,
            _ => return Err("x-match must be \"all\" or \"any\"".into()),
        };
        let headers =
            filter.iter().filter(|(k, _)| !k.starts_with("x-")).map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(Self { any, headers, filter: filter.clone() })
    }

    /// The filter as it was given.
    pub fn filter(&self) -> &Map<String, Value> {
        &self.filter
    }

    pub fn matches(&self, message: &Map<String, Value>) -> bool {
        let equal = |(k, v): (&String, &Value)| message.get(k) == Some(v);
        if self.any { self.headers.iter().any(equal) } else { self.headers.iter().all(equal) }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn topic_patterns_follow_rabbitmq() {
        let cases = [
            ("delivery.*", "delivery.created", true),
            ("delivery.*", "delivery", false),
            ("delivery.*", "delivery.created.late", false),
            ("delivery.#", "delivery", true),
            ("delivery.#", "delivery.a.b.c", true),
            ("#", "", true),
            ("#", "anything.at.all", true),
            ("*", "one", true),
            ("*", "", true),
            ("*", "two.words", false),
            ("*.*", "a", false),
            ("#.a", "a", true),
            ("#.a", "x.y.a", true),
            ("#.a", "a.x", false),
            ("a.#.b", "a.b", true),
            ("a.#.b", "a.x.y.b", true),
            ("a.#.b", "a.x.y.c", false),
            ("a.*.#", "a.b", true),
            ("a.*.#", "a", false),
            ("#.#", "", true),
            ("a..b", "a..b", true),
            ("a.*.b", "a..b", true),
            ("delivery.created", "delivery.created", true),
            ("delivery.created", "delivery.createdx", false),
            ("", "", true),
            ("", "a", false),
        ];
        for (pattern, key, want) in cases {
            let p = RoutingPattern::parse(pattern).unwrap();
            assert_eq!(p.matches(key), want, "{pattern:?} against {key:?}");
        }
    }

    #[test]
    fn header_filters_match_all_or_any() {
        let message = json!({"format": "pdf", "type": "report", "x-extra": 1});
        let message = message.as_object().unwrap();
        let filter = |v: Value| HeaderMatch::parse(v.as_object().unwrap()).unwrap();
        assert!(filter(json!({"format": "pdf", "type": "report"})).matches(message));
        assert!(!filter(json!({"format": "pdf", "type": "log"})).matches(message));
        assert!(filter(json!({"x-match": "any", "format": "zip", "type": "report"})).matches(message));
        assert!(!filter(json!({"x-match": "any", "format": "zip"})).matches(message));
        assert!(filter(json!({"x-match": "all"})).matches(message), "an empty all-filter matches everything");
        assert!(HeaderMatch::parse(json!({"x-match": "some"}).as_object().unwrap()).is_err());
    }
}
