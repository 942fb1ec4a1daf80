//! Typed configuration, read once from the environment. Names and defaults
//! follow spec 002; a bad value fails start-up with one message naming the variable.

use std::{net::IpAddr, path::PathBuf};

use crate::domain::parse_duration_ns;

/// Everything the service reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `MESSAGE_QUEUE_HOST`: address the local server binds (default `127.0.0.1`).
    pub host: IpAddr,
    /// `MESSAGE_QUEUE_PORT`: HTTP port (default 8087; 0 picks a free one).
    pub port: u16,
    /// `MESSAGE_QUEUE_MAX_SIZE`: largest message content, in bytes (default 1 MiB).
    pub max_message_size: usize,
    /// `MESSAGE_QUEUE_TTL`: TTL of a message that names none and whose queue sets none (default 24h).
    pub default_ttl_ms: u64,
    /// `MESSAGE_QUEUE_DATA_DIR`: directory of the embedded SQLite file (default `data`).
    pub data_dir: PathBuf,
    /// `MESSAGE_QUEUE_AUTO_CREATE`: publishing to an unknown queue creates it (default true).
    pub auto_create_queues: bool,
    /// `MESSAGE_QUEUE_DEFAULT_PARTITIONS`: partitions of a queue created without a count (default 1).
    pub default_partitions: u32,
    /// `MESSAGE_QUEUE_RETENTION`: how long records of a queue without its own retention are kept (default 168h).
    pub default_retention_ms: u64,
    /// `MESSAGE_QUEUE_VISIBILITY_TIMEOUT`: how long a consumed message stays leased (default 30s).
    pub visibility_timeout_ms: u64,
    /// `MESSAGE_QUEUE_MAX_DELIVERIES`: deliveries to a group before a message is dead-lettered (default 10).
    pub max_deliveries: u32,
    /// `MESSAGE_QUEUE_CALLBACK_ALLOW`: networks callbacks may reach although not public
    /// (comma-separated, e.g. `127.0.0.1/32,::1`; default none).
    pub callback_policy: crate::callback::AddressPolicy,
    /// `MESSAGE_QUEUE_CALLBACK_TIMEOUT`: how long one push delivery may take (default 10s).
    pub callback_timeout_ms: u64,
    /// `MESSAGE_QUEUE_AUTO_PAUSE_AFTER`: a subscription whose callback has failed every attempt
    /// for this long (and at least 5 times) is paused (default 1h).
    pub auto_pause_after_ms: u64,
    /// JWT verification settings.
    pub jwt: JwtConfig,
}

/// `JWT_*`: bearer-token verification (HS256).
#[derive(Debug, Clone, Default)]
pub struct JwtConfig {
    /// `JWT_SECRET`: the HS256 key. The local server makes one per data directory when unset.
    pub secret: Option<String>,
    /// `JWT_ISSUER`: required `iss` claim, when set.
    pub issuer: Option<String>,
    /// `JWT_AUDIENCE`: required `aud` claim, when set.
    pub audience: Option<String>,
    /// `JWT_LEEWAY_SECONDS`: clock skew allowed on `exp` and `nbf` (default 30).
    pub leeway_secs: u64,
}

/// A variable that is set but cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `get`, so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &'static str| Var { name, value: get(name).filter(|v| !v.is_empty()) };
        Ok(Self {
            host: var("MESSAGE_QUEUE_HOST").parse_or("127.0.0.1".parse().expect("literal"))?,
            port: var("MESSAGE_QUEUE_PORT").parse_or(8087)?,
            max_message_size: var("MESSAGE_QUEUE_MAX_SIZE").parse_or(1_048_576)?,
            default_ttl_ms: var("MESSAGE_QUEUE_TTL").duration_ms_or(86_400_000)?,
            data_dir: var("MESSAGE_QUEUE_DATA_DIR").value.map_or_else(|| "data".into(), PathBuf::from),
            auto_create_queues: var("MESSAGE_QUEUE_AUTO_CREATE").parse_or(true)?,
            default_partitions: var("MESSAGE_QUEUE_DEFAULT_PARTITIONS").parse_or(1)?,
            default_retention_ms: var("MESSAGE_QUEUE_RETENTION").duration_ms_or(7 * 86_400_000)?,
            visibility_timeout_ms: var("MESSAGE_QUEUE_VISIBILITY_TIMEOUT").duration_ms_or(30_000)?,
            max_deliveries: var("MESSAGE_QUEUE_MAX_DELIVERIES").parse_or(10)?,
            callback_policy: {
                let v = var("MESSAGE_QUEUE_CALLBACK_ALLOW");
                let list = v.value.clone().unwrap_or_default();
                crate::callback::AddressPolicy::parse(&list).map_err(|e| v.error(&list, e))?
            },
            callback_timeout_ms: var("MESSAGE_QUEUE_CALLBACK_TIMEOUT").duration_ms_or(10_000)?,
            auto_pause_after_ms: var("MESSAGE_QUEUE_AUTO_PAUSE_AFTER").duration_ms_or(3_600_000)?,
            jwt: JwtConfig {
                secret: var("JWT_SECRET").value,
                issuer: var("JWT_ISSUER").value,
                audience: var("JWT_AUDIENCE").value,
                leeway_secs: var("JWT_LEEWAY_SECONDS").parse_or(30)?,
            },
        })
        .and_then(Self::checked)
    }

    fn checked(self) -> Result<Self, ConfigError> {
        let fail = |name, value: String, reason: &str| Err(ConfigError { name, value, reason: reason.into() });
        if self.max_message_size == 0 {
            return fail("MESSAGE_QUEUE_MAX_SIZE", "0".into(), "must be at least 1");
        }
        if self.default_ttl_ms == 0 {
            return fail("MESSAGE_QUEUE_TTL", "0".into(), "must be at least 1ms");
        }
        if self.visibility_timeout_ms == 0 {
            return fail("MESSAGE_QUEUE_VISIBILITY_TIMEOUT", "0".into(), "must be at least 1ms");
        }
        if self.max_deliveries == 0 {
            return fail("MESSAGE_QUEUE_MAX_DELIVERIES", "0".into(), "must be at least 1");
        }
        if !(1..=crate::ops::MAX_PARTITIONS).contains(&self.default_partitions) {
            let reason = format!("must be 1 to {}", crate::ops::MAX_PARTITIONS);
            return fail("MESSAGE_QUEUE_DEFAULT_PARTITIONS", self.default_partitions.to_string(), &reason);
        }
        Ok(self)
    }
}

struct Var {
    name: &'static str,
    value: Option<String>,
}

impl Var {
    fn parse_or<T: std::str::FromStr>(self, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match &self.value {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|e: T::Err| self.error(v, e.to_string())),
        }
    }

    fn duration_ms_or(self, default: u64) -> Result<u64, ConfigError> {
        match &self.value {
            None => Ok(default),
            Some(v) => parse_duration_ns(v).map(|ns| ns / 1_000_000).map_err(|e| self.error(v, e)),
        }
    }

    fn error(&self, value: &str, reason: String) -> ConfigError {
        ConfigError { name: self.name, value: value.to_owned(), reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_follow_spec_002() {
        let c = with(&[]).unwrap();
        assert_eq!(c.port, 8087);
        assert_eq!(c.max_message_size, 1_048_576);
        assert_eq!(c.default_ttl_ms, 86_400_000);
        assert!(c.auto_create_queues);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let e = with(&[("MESSAGE_QUEUE_PORT", "eighty")]).unwrap_err();
        assert_eq!(e.name, "MESSAGE_QUEUE_PORT");
        let e = with(&[("MESSAGE_QUEUE_TTL", "a day")]).unwrap_err();
        assert_eq!(e.name, "MESSAGE_QUEUE_TTL");
        assert_eq!(with(&[("MESSAGE_QUEUE_TTL", "90m")]).unwrap().default_ttl_ms, 5_400_000);
    }
}
