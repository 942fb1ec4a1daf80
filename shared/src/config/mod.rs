//! Typed configuration, read once from the environment. Names and defaults
//! follow spec 002; a bad value fails start-up with one message naming the variable.

mod kafka;
mod store;

use std::{net::IpAddr, path::PathBuf};

pub use kafka::KafkaConfig;
pub use store::{LogPlace, StoreUrl};

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable lines, the local default.
    Text,
    /// One JSON object a line, with the fields of the spans it is in (the request id among them).
    Json,
}

pub use crate::auth::JwtConfig;
use crate::domain::parse_duration_ns;

/// Every variable read, with its default and meaning: for `--help`.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    ("MESSAGE_QUEUE_HOST", "127.0.0.1", "address the local server binds"),
    ("MESSAGE_QUEUE_PORT", "8087", "HTTP port (0 picks a free one)"),
    ("MESSAGE_QUEUE_DATA_DIR", "data", "directory of the local server's files (the SQLite file, the JWT secret)"),
    (
        "MESSAGE_QUEUE_STORE",
        "sqlite://<data dir>/mq.sqlite3",
        "where state is kept: sqlite://<path> or postgres://user:password@host:port/database",
    ),
    ("DB_HOST", "unset", "PostgreSQL host, when MESSAGE_QUEUE_STORE is unset: state in PostgreSQL"),
    ("DB_PORT", "5432", "PostgreSQL port (with DB_HOST)"),
    ("DB_USER", "postgres", "PostgreSQL user (with DB_HOST)"),
    ("DB_PASSWORD", "postgres", "PostgreSQL password (with DB_HOST)"),
    ("DB_NAME", "necpgame", "PostgreSQL database (with DB_HOST)"),
    ("MESSAGE_QUEUE_DB_POOL", "16", "PostgreSQL connections each process opens at most"),
    ("MESSAGE_QUEUE_DB_TIMEOUT", "5s", "how long connecting to PostgreSQL, or waiting for a free connection, may take"),
    ("MESSAGE_QUEUE_DB_STATEMENT_TIMEOUT", "30s", "longest a PostgreSQL statement may run"),
    (
        "MESSAGE_QUEUE_LOG",
        "files",
        "where a SQLite store keeps messages: files (segment files beside it) or store (in it)",
    ),
    ("KAFKA_BROKERS", "unset", "Kafka bootstrap servers (host:port,...); when set, the message log is in Kafka"),
    ("KAFKA_TOPIC_PREFIX", "empty", "put before a queue's name to make its topic's name"),
    ("KAFKA_SECURITY_PROTOCOL", "plaintext", "plaintext, ssl, sasl_plaintext or sasl_ssl"),
    ("KAFKA_SASL_MECHANISM", "unset", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with a sasl_* protocol)"),
    ("KAFKA_SASL_USERNAME", "unset", "SASL user name"),
    ("KAFKA_SASL_PASSWORD", "unset", "SASL password"),
    ("KAFKA_SSL_CA_LOCATION", "system", "file of CA certificates that sign the brokers' certificates"),
    ("KAFKA_TIMEOUT", "10s", "how long one call to the brokers may take before it is answered 503"),
    (
        "KAFKA_SETTINGS",
        "none",
        "further librdkafka settings for every client, key=value,...; they override the service's own",
    ),
    ("MESSAGE_QUEUE_MAX_SIZE", "1048576", "largest message content, in bytes"),
    ("MESSAGE_QUEUE_TTL", "24h", "TTL of a message whose request and queue set none"),
    ("MESSAGE_QUEUE_RETENTION", "168h", "how long records are kept when a topic sets no retention"),
    ("MESSAGE_QUEUE_AUTO_CREATE", "true", "publishing to an unknown queue creates it"),
    ("MESSAGE_QUEUE_DEFAULT_PARTITIONS", "1", "partitions of a queue created without a count"),
    ("MESSAGE_QUEUE_VISIBILITY_TIMEOUT", "30s", "how long a consumed message stays leased"),
    ("MESSAGE_QUEUE_MAX_DELIVERIES", "10", "deliveries to a group before a message is dead-lettered"),
    ("MESSAGE_QUEUE_CALLBACK_ALLOW", "none", "non-public networks callbacks may reach, e.g. 127.0.0.1/32,::1"),
    ("MESSAGE_QUEUE_CALLBACK_TIMEOUT", "10s", "how long one push delivery may take"),
    ("MESSAGE_QUEUE_AUTO_PAUSE_AFTER", "1h", "a subscription failing every attempt this long is paused"),
    ("MESSAGE_QUEUE_STATS_FLUSH", "10s", "how often figures go to the store, where every process reads them"),
    (
        "MESSAGE_QUEUE_RECHECK",
        "200ms",
        "how often a waiting long poll looks for records another process published without a signal",
    ),
    (
        "PPROF_ADDR",
        ":6067",
        "CPU profiles at /debug/pprof/profile (pprof format); a bare :port binds 127.0.0.1 only; off disables it",
    ),
    (
        "METRICS_ADDR",
        ":9097",
        "Prometheus exposition at /metrics on its own listener; a bare :port binds MESSAGE_QUEUE_HOST; off disables it",
    ),
    ("LOG_FORMAT", "text", "log lines on stderr: text (readable) or json (one JSON object a line)"),
    ("MESSAGE_QUEUE_HEADER_TIMEOUT", "10s", "time to send a request's headers (and idle time between requests)"),
    ("MESSAGE_QUEUE_BODY_TIMEOUT", "30s", "time to send a request's body, once its headers arrived"),
    ("MESSAGE_QUEUE_MAX_CONNECTIONS", "1024", "connections served at once; more wait to be accepted"),
    ("JWT_SECRET", "generated", "HS256 key, at least 32 bytes; else one kept in <data dir>/jwt-secret"),
    ("JWT_ISSUER", "unset", "required iss claim, when set"),
    ("JWT_AUDIENCE", "unset", "required aud claim, when set"),
    ("JWT_LEEWAY_SECONDS", "30", "clock skew allowed on exp and nbf"),
    ("RUST_LOG", "info", "log filter, e.g. warn or shared=debug (logs go to stderr)"),
];

/// Shortest `JWT_SECRET` accepted: an HS256 key must be at least as long as the hash (RFC 7518 3.2).
pub const MIN_SECRET_BYTES: usize = 32;

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
    /// `MESSAGE_QUEUE_DATA_DIR`: directory of the local server's files (default `data`).
    pub data_dir: PathBuf,
    /// `MESSAGE_QUEUE_STORE`: where state is kept (default: `mq.sqlite3` in the data directory).
    pub store: StoreUrl,
    /// `MESSAGE_QUEUE_DB_POOL`, `MESSAGE_QUEUE_DB_TIMEOUT`, `MESSAGE_QUEUE_DB_STATEMENT_TIMEOUT`:
    /// the PostgreSQL store's connections.
    pub db_pool: DbPool,
    /// `METRICS_ADDR`: where the Prometheus exposition listens (default `:9097`, on `host`); `None`: off.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `PPROF_ADDR`: where CPU profiles are served (default `:6067`, a bare port on loopback
    /// whatever `MESSAGE_QUEUE_HOST` says); `None`: off.
    pub pprof_addr: Option<std::net::SocketAddr>,
    /// `LOG_FORMAT`: `text` (default) or `json` log lines.
    pub log_format: LogFormat,
    /// `MESSAGE_QUEUE_LOG`: where a SQLite store keeps its message log (default: segment files).
    pub log_place: LogPlace,
    /// `KAFKA_BROKERS` and the other `KAFKA_*` variables: when set, the message log is in Kafka.
    pub kafka: Option<KafkaConfig>,
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
    /// `MESSAGE_QUEUE_STATS_FLUSH`: how often this process writes its figures to the store, where
    /// every process reads them (default 10s).
    pub stats_flush_ms: u64,
    /// `MESSAGE_QUEUE_RECHECK`: how often a waiting long poll looks for records another process
    /// published, whether or not a signal came (default 200ms).
    pub recheck_ms: u64,
    /// JWT verification settings.
    pub jwt: JwtConfig,
    /// Limits on what clients of the HTTP server may hold.
    pub limits: ClientLimits,
}

/// How long clients may take and how many may connect: slow or idle clients
/// cannot hold the server's connections and tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// `MESSAGE_QUEUE_HEADER_TIMEOUT`: time to send a request's headers, and the longest
    /// a kept-alive connection waits for its next request (default 10s).
    pub header_timeout_ms: u64,
    /// `MESSAGE_QUEUE_BODY_TIMEOUT`: time to send a request's body once its headers arrived (default 30s).
    pub body_timeout_ms: u64,
    /// `MESSAGE_QUEUE_MAX_CONNECTIONS`: connections served at once (default 1024).
    pub max_connections: usize,
}

/// How a database store's connection pool is sized and how long it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbPool {
    /// Connections each process opens at most (default 16).
    pub size: usize,
    /// How long connecting, or waiting for a free connection, may take (default 5s).
    pub timeout_ms: u64,
    /// Longest a statement may run (default 30s).
    pub statement_timeout_ms: u64,
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
        let data_dir = var("MESSAGE_QUEUE_DATA_DIR").value.map_or_else(|| PathBuf::from("data"), PathBuf::from);
        Ok(Self {
            host: var("MESSAGE_QUEUE_HOST").parse_or("127.0.0.1".parse().expect("literal"))?,
            port: var("MESSAGE_QUEUE_PORT").parse_or(8087)?,
            max_message_size: var("MESSAGE_QUEUE_MAX_SIZE").parse_or(1_048_576)?,
            default_ttl_ms: var("MESSAGE_QUEUE_TTL").duration_ms_or(86_400_000)?,
            store: {
                let v = var("MESSAGE_QUEUE_STORE");
                // Spec 002's variables name a PostgreSQL database when no URL does.
                let host = var("DB_HOST").value;
                let port: u16 = var("DB_PORT").parse_or(5432)?;
                let part = |name, default: &str| var(name).value.unwrap_or_else(|| default.to_owned());
                let (user, password, database) =
                    (part("DB_USER", "postgres"), part("DB_PASSWORD", "postgres"), part("DB_NAME", "necpgame"));
                match (&v.value, host) {
                    (Some(url), _) => StoreUrl::parse(url).map_err(|e| v.error(url, e))?,
                    (None, Some(host)) => StoreUrl::postgres(&host, port, &user, &password, &database),
                    (None, None) => StoreUrl::in_data_dir(&data_dir),
                }
            },
            db_pool: DbPool {
                size: var("MESSAGE_QUEUE_DB_POOL").parse_or(16)?,
                timeout_ms: var("MESSAGE_QUEUE_DB_TIMEOUT").duration_ms_or(5_000)?,
                statement_timeout_ms: var("MESSAGE_QUEUE_DB_STATEMENT_TIMEOUT").duration_ms_or(30_000)?,
            },
            data_dir,
            metrics_addr: {
                let host: IpAddr = var("MESSAGE_QUEUE_HOST").parse_or("127.0.0.1".parse().expect("literal"))?;
                var("METRICS_ADDR").listen_addr(":9097", host)?
            },
            pprof_addr: var("PPROF_ADDR").listen_addr(":6067", "127.0.0.1".parse().expect("literal"))?,
            log_format: {
                let v = var("LOG_FORMAT");
                match v.value.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("text") => LogFormat::Text,
                    Some("json") => LogFormat::Json,
                    Some(other) => return Err(v.error(other, "must be text or json".into())),
                }
            },
            log_place: {
                let v = var("MESSAGE_QUEUE_LOG");
                match &v.value {
                    Some(place) => LogPlace::parse(place).map_err(|e| v.error(place, e))?,
                    None => LogPlace::Files,
                }
            },
            kafka: {
                let timeout_ms = var("KAFKA_TIMEOUT").duration_ms_or(10_000)?;
                KafkaConfig::from_lookup(|name| get(name).filter(|v| !v.is_empty()), timeout_ms)
            },
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
            stats_flush_ms: var("MESSAGE_QUEUE_STATS_FLUSH").duration_ms_or(10_000)?,
            recheck_ms: var("MESSAGE_QUEUE_RECHECK").duration_ms_or(200)?,
            jwt: JwtConfig {
                secret: var("JWT_SECRET").value,
                issuer: var("JWT_ISSUER").value,
                audience: var("JWT_AUDIENCE").value,
                leeway_secs: var("JWT_LEEWAY_SECONDS").parse_or(30)?,
            },
            limits: ClientLimits {
                header_timeout_ms: var("MESSAGE_QUEUE_HEADER_TIMEOUT").duration_ms_or(10_000)?,
                body_timeout_ms: var("MESSAGE_QUEUE_BODY_TIMEOUT").duration_ms_or(30_000)?,
                max_connections: var("MESSAGE_QUEUE_MAX_CONNECTIONS").parse_or(1024)?,
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
        let limits = [
            ("MESSAGE_QUEUE_HEADER_TIMEOUT", self.limits.header_timeout_ms),
            ("MESSAGE_QUEUE_BODY_TIMEOUT", self.limits.body_timeout_ms),
            ("MESSAGE_QUEUE_MAX_CONNECTIONS", self.limits.max_connections as u64),
            ("MESSAGE_QUEUE_STATS_FLUSH", self.stats_flush_ms),
            ("MESSAGE_QUEUE_RECHECK", self.recheck_ms),
            ("MESSAGE_QUEUE_DB_POOL", self.db_pool.size as u64),
            ("MESSAGE_QUEUE_DB_TIMEOUT", self.db_pool.timeout_ms),
            ("MESSAGE_QUEUE_DB_STATEMENT_TIMEOUT", self.db_pool.statement_timeout_ms),
        ];
        if let Some((name, _)) = limits.iter().find(|(_, v)| *v == 0) {
            return fail(name, "0".into(), "must be above 0");
        }
        if let Some(secret) = &self.jwt.secret
            && secret.len() < MIN_SECRET_BYTES
        {
            let reason = format!(
                "is {} bytes; an HS256 key must have at least {MIN_SECRET_BYTES} (256 bits), \
                 e.g. the output of `openssl rand -hex 32`",
                secret.len()
            );
            return fail("JWT_SECRET", "(hidden)".into(), &reason);
        }
        if !(1..=crate::domain::MAX_PARTITIONS).contains(&self.default_partitions) {
            let reason = format!("must be 1 to {}", crate::domain::MAX_PARTITIONS);
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
    /// `:port` (on `host`), `host:port`, or `off` (`None`).
    fn listen_addr(self, default: &str, host: IpAddr) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        let text = match self.value.as_deref() {
            Some("off") => return Ok(None),
            given => given.unwrap_or(default),
        };
        let parsed = match text.strip_prefix(':') {
            Some(port) => port.parse::<u16>().map(|p| std::net::SocketAddr::new(host, p)).ok(),
            None => text.parse().ok(),
        };
        parsed.map(Some).ok_or_else(|| self.error(text, "must be :port, host:port or off".into()))
    }

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
    fn every_variable_read_is_listed_for_help() {
        let read = std::sync::Mutex::new(Vec::new());
        Config::from_lookup(|name| {
            read.lock().unwrap().push(name.to_owned());
            None
        })
        .unwrap();
        for name in read.into_inner().unwrap() {
            assert!(VARIABLES.iter().any(|(v, ..)| *v == name), "{name} is not in VARIABLES");
        }
    }

    #[test]
    fn the_store_defaults_to_sqlite_in_the_data_dir_and_a_bad_url_names_its_variable() {
        assert_eq!(
            with(&[("MESSAGE_QUEUE_DATA_DIR", "/srv/mq")]).unwrap().store,
            StoreUrl::Sqlite("/srv/mq/mq.sqlite3".into())
        );
        let e = with(&[("MESSAGE_QUEUE_STORE", "redis://x")]).unwrap_err();
        assert_eq!(e.name, "MESSAGE_QUEUE_STORE");
    }

    #[test]
    fn spec_002_database_variables_name_a_postgres_store_when_no_url_does() {
        let c = with(&[("DB_HOST", "db"), ("DB_NAME", "mq")]).unwrap();
        assert_eq!(c.store, StoreUrl::Postgres("postgres://postgres:postgres@db:5432/mq".into()));
        let url = with(&[("DB_HOST", "db"), ("MESSAGE_QUEUE_STORE", "sqlite://x.db")]).unwrap();
        assert_eq!(url.store, StoreUrl::Sqlite("x.db".into()), "a URL wins");
        assert_eq!(with(&[("DB_PORT", "none")]).unwrap_err().name, "DB_PORT");
        assert_eq!(with(&[("MESSAGE_QUEUE_DB_POOL", "0")]).unwrap_err().name, "MESSAGE_QUEUE_DB_POOL");
        assert_eq!(c.db_pool, DbPool { size: 16, timeout_ms: 5_000, statement_timeout_ms: 30_000 });
    }

    #[test]
    fn a_short_jwt_secret_is_refused_without_being_shown() {
        let e = with(&[("JWT_SECRET", "short-secret")]).unwrap_err();
        assert_eq!(e.name, "JWT_SECRET");
        assert!(!e.to_string().contains("short-secret"), "{e}");
        assert!(with(&[("JWT_SECRET", &"k".repeat(32))]).is_ok());
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
