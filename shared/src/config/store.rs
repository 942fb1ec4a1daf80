//! Where the service keeps its state: `MESSAGE_QUEUE_STORE` names the metadata
//! store (and, for stores that have one, the message log) by URL;
//! `KAFKA_BROKERS` puts the message log in Kafka instead.

use std::path::PathBuf;

/// The store named by `MESSAGE_QUEUE_STORE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite://<path>`: one SQLite file, relative to the working directory unless the path is
    /// absolute (`sqlite:///var/lib/mq/mq.sqlite3`). Holds every port.
    Sqlite(PathBuf),
    /// `postgres://user:password@host:port/database`.
    Postgres(String),
    /// `dynamodb://<table or prefix>`.
    DynamoDb(String),
}

impl StoreUrl {
    /// The default: the SQLite file `mq.sqlite3` in the data directory.
    pub fn in_data_dir(data_dir: &std::path::Path) -> Self {
        Self::Sqlite(data_dir.join("mq.sqlite3"))
    }

    /// A PostgreSQL store from its parts (spec 002's `DB_HOST`, `DB_PORT`, ...).
    pub fn postgres(host: &str, port: u16, user: &str, password: &str, database: &str) -> Self {
        let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_owned() };
        Self::Postgres(format!(
            "postgres://{}:{}@{host}:{port}/{}",
            percent_encoded(user),
            percent_encoded(password),
            percent_encoded(database)
        ))
    }

    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url.split_once("://").ok_or("must be a URL such as sqlite://data/mq.sqlite3")?;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" if rest.is_empty() => Err("names no file: sqlite://<path>".into()),
            "sqlite" => Ok(Self::Sqlite(PathBuf::from(rest))),
            "postgres" | "postgresql" => Ok(Self::Postgres(url.to_owned())),
            "dynamodb" if rest.is_empty() => Err("names no table: dynamodb://<table or prefix>".into()),
            "dynamodb" => Ok(Self::DynamoDb(rest.to_owned())),
            other => Err(format!("scheme {other:?} is not one of sqlite, postgres, dynamodb")),
        }
    }

    /// The scheme, as written in messages.
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
            Self::DynamoDb(_) => "dynamodb",
        }
    }
}

/// Every byte but letters, digits and `-._~` as `%XX`, for a part of a URL.
fn percent_encoded(part: &str) -> String {
    part.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where a SQLite store keeps its message log (`MESSAGE_QUEUE_LOG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogPlace {
    /// `files` (the default): append-only segment files in a directory beside the SQLite file,
    /// `<stem>-log` (`data/mq-log` for `data/mq.sqlite3`); one process owns them.
    Files,
    /// `store`: rows of the SQLite file itself, for several processes sharing one file.
    Store,
}

impl LogPlace {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.to_ascii_lowercase().as_str() {
            "files" => Ok(Self::Files),
            "store" => Ok(Self::Store),
            _ => Err("must be files or store".into()),
        }
    }

    /// The segment-file directory of the SQLite file at `path`.
    pub fn files_beside(path: &std::path::Path) -> PathBuf {
        let stem = path.file_stem().map_or_else(|| "mq".into(), |s| s.to_string_lossy().into_owned());
        path.with_file_name(format!("{stem}-log"))
    }
}

impl std::fmt::Display for StoreUrl {
    /// The URL without credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => {
                let without = url.rsplit_once('@').map_or(url.as_str(), |(_, host)| host);
                write!(
                    f,
                    "postgres://{}",
                    without.trim_start_matches("postgres://").trim_start_matches("postgresql://")
                )
            }
            Self::DynamoDb(table) => write!(f, "dynamodb://{table}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_their_backend() {
        assert_eq!(StoreUrl::parse("sqlite://data/mq.sqlite3"), Ok(StoreUrl::Sqlite("data/mq.sqlite3".into())));
        assert_eq!(StoreUrl::parse("sqlite:///var/mq.db"), Ok(StoreUrl::Sqlite("/var/mq.db".into())));
        assert_eq!(StoreUrl::parse("dynamodb://mq-prod"), Ok(StoreUrl::DynamoDb("mq-prod".into())));
        let pg = StoreUrl::parse("postgres://mq:secret@db:5432/mq").unwrap();
        assert_eq!(pg.to_string(), "postgres://db:5432/mq", "no password in messages");
        let parts = StoreUrl::postgres("db.internal", 6432, "mq", "p@ss:w/rd", "queues");
        assert_eq!(parts, StoreUrl::Postgres("postgres://mq:p%40ss%3Aw%2Frd@db.internal:6432/queues".into()));
        assert_eq!(parts.to_string(), "postgres://db.internal:6432/queues");
        for bad in ["data/mq.sqlite3", "sqlite://", "mysql://x", "dynamodb://"] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_log_sits_beside_the_sqlite_file_unless_kept_in_it() {
        assert_eq!(LogPlace::parse("FILES"), Ok(LogPlace::Files));
        assert_eq!(LogPlace::parse("store"), Ok(LogPlace::Store));
        assert!(LogPlace::parse("kafka").is_err());
        assert_eq!(LogPlace::files_beside(std::path::Path::new("data/mq.sqlite3")), PathBuf::from("data/mq-log"));
    }
}
