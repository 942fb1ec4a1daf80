//! The Kafka message log's settings (listed in `super::VARIABLES`): `KAFKA_BROKERS` (spec 002) puts the log in Kafka; the
//! security settings map one to one onto librdkafka's (`security.protocol`, `sasl.*`, `ssl.*`).

/// Where the Kafka log is and how to reach it.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic_prefix: String,
    /// librdkafka settings from the security variables, as given.
    pub settings: Vec<(String, String)>,
    pub timeout_ms: u64,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<(&str, &str)> = self
            .settings
            .iter()
            .map(|(k, v)| {
                (k.as_str(), if k.contains("password") || k.contains("secret") { "<hidden>" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("settings", &shown)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl KafkaConfig {
    /// The settings from variables read through `get`; `None` when `KAFKA_BROKERS` is unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>, timeout_ms: u64) -> Option<Self> {
        let brokers = get("KAFKA_BROKERS")?;
        let settings = [
            ("KAFKA_SECURITY_PROTOCOL", "security.protocol"),
            ("KAFKA_SASL_MECHANISM", "sasl.mechanism"),
            ("KAFKA_SASL_USERNAME", "sasl.username"),
            ("KAFKA_SASL_PASSWORD", "sasl.password"),
            ("KAFKA_SSL_CA_LOCATION", "ssl.ca.location"),
        ]
        .into_iter()
        .filter_map(|(variable, setting)| get(variable).map(|value| (setting.to_owned(), value)))
        .chain(get("KAFKA_SETTINGS").iter().flat_map(|list| list_settings(list)))
        .collect();
        Some(Self { brokers, topic_prefix: get("KAFKA_TOPIC_PREFIX").unwrap_or_default(), settings, timeout_ms })
    }
}

/// `key=value,key=value` (`KAFKA_SETTINGS`); an item without `=` is left out.
fn list_settings(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .filter_map(|item| item.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .filter(|(key, _)| !key.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn further_settings_follow_the_named_ones() {
        let vars = [("KAFKA_BROKERS", "b:9092"), ("KAFKA_SASL_PASSWORD", "p"), ("KAFKA_SETTINGS", "a=1, b = 2,junk,")];
        let get = |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned());
        let config = KafkaConfig::from_lookup(get, 10).unwrap();
        let want = [("sasl.password", "p"), ("a", "1"), ("b", "2")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(config.settings, want);
        assert!(!format!("{config:?}").contains("\"p\""), "{config:?}");
    }
}
