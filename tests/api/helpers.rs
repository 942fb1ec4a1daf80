//! `TestServer`: the server binary as a child process, and a client for it.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Mutex, mpsc},
    time::Duration,
};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

#[cfg(any(feature = "postgres", feature = "kafka"))]
#[path = "../support/infra.rs"]
mod infra;
#[cfg(feature = "kafka")]
#[path = "../support/kafka.rs"]
pub mod kafka;
#[cfg(feature = "postgres")]
#[path = "../support/postgres.rs"]
pub mod pg;

pub const SECRET: &str = "test-secret-of-the-api-suite-at-least-32-bytes";

/// A running server; killed when dropped.
pub struct TestServer {
    child: Mutex<Child>,
    pub base: String,
    /// The Prometheus exposition (`http://host:port/metrics`), when the server serves one.
    pub metrics: Option<String>,
    /// The CPU profile endpoint (`http://host:port/debug/pprof/profile`), when the server serves one.
    pub pprof: Option<String>,
    pub client: reqwest::Client,
    pub token: String,
    /// `MESSAGE_QUEUE_STORE` of the server, when the test or the suite set one.
    #[allow(dead_code, reason = "read by the PostgreSQL suite's tests only")]
    pub store: Option<String>,
    _dir: Option<TempDir>,
}

impl TestServer {
    /// A server on a fresh data directory with default settings.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A server on a fresh data directory with extra environment variables.
    pub async fn start_with(env: &[(&str, &str)]) -> Self {
        let dir = TempDir::new().expect("temp dir");
        let mut server = Self::start_in(dir.path(), env);
        server._dir = Some(dir);
        server
    }

    /// A server on a data directory the caller keeps, so another can start on it later.
    pub fn start_in(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::spawn(data_dir, env, Stdio::inherit())
    }

    /// Like [`Self::start_in`], its log (at `info`) going to `log`.
    pub fn start_logging(data_dir: &Path, env: &[(&str, &str)], log: std::fs::File) -> Self {
        Self::spawn(data_dir, &[&[("RUST_LOG", "info")], env].concat(), Stdio::from(log))
    }

    fn spawn(data_dir: &Path, env: &[(&str, &str)], stderr: Stdio) -> Self {
        // Made here, not by the server: a directory's database and topics live while it exists.
        std::fs::create_dir_all(data_dir).expect("the data directory");
        let store = env
            .iter()
            .find(|(name, _)| *name == "MESSAGE_QUEUE_STORE")
            .map(|(_, url)| (*url).to_owned())
            .or_else(|| store_url(data_dir));
        let mut child = Command::new(env!("CARGO_BIN_EXE_message-queue"))
            .env("MESSAGE_QUEUE_PORT", "0")
            .env("MESSAGE_QUEUE_DATA_DIR", data_dir)
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env("PPROF_ADDR", "127.0.0.1:0")
            .env("MESSAGE_QUEUE_LOG", crate::LOG)
            .env("JWT_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .envs(store.iter().map(|url| ("MESSAGE_QUEUE_STORE", url)))
            .envs(kafka_env(data_dir, env))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the server binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let markers =
                    [("http", "listening on http://"), ("metrics", "metrics on http://"), ("pprof", "profiles on http://")];
                for (kind, marker) in markers {
                    if let Some(addr) = line.split(marker).nth(1) {
                        let _ = tx.send((kind, addr.trim().to_owned()));
                    }
                }
            }
        });
        let (mut metrics, mut pprof) = (None, None);
        let addr = loop {
            match rx.recv_timeout(Duration::from_secs(20)).expect("the server reports its address") {
                ("metrics", url) => metrics = Some(format!("http://{url}")),
                ("pprof", url) => pprof = Some(format!("http://{url}")),
                (_, addr) => break addr,
            }
        };
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        Self {
            child: Mutex::new(child),
            base: format!("http://{addr}"),
            metrics,
            pprof,
            client,
            token: token("test-user"),
            store,
            _dir: None,
        }
    }

    /// Kills the process with SIGKILL, as a crash or an OOM kill would.
    pub fn kill_hard(&self) {
        let mut child = self.child.lock().expect("child lock");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit: answers its status and how long it took.
    pub fn terminate(&self) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.lock().expect("child lock");
        let sent = std::time::Instant::now();
        let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
        assert!(kill.success(), "kill -TERM failed");
        loop {
            if let Some(status) = child.try_wait().expect("waits") {
                return (status, sent.elapsed());
            }
            assert!(sent.elapsed() < Duration::from_secs(10), "the server did not exit within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The host and port it listens on.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Sends a request with the default token; answers the status and the JSON body (or null).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.expect("the server answers")).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// Sends a raw body with the given content type and token.
    pub async fn raw(&self, method: Method, path: &str, content_type: Option<&str>, body: &str) -> (StatusCode, Value) {
        let mut req =
            self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token).body(body.to_owned());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        read(req.send().await.expect("the server answers")).await
    }

    /// Publishes a small JSON message to a queue through spec 000 and answers its id.
    pub async fn publish(&self, queue: &str, message: Value) -> String {
        let (status, body) = self.post("/message-queue/publish", json!({"queue": queue, "message": message})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["message_id"].as_str().expect("message_id").to_owned()
    }
}

impl TestServer {
    fn kill_hard_quietly(&self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill_hard_quietly();
    }
}

/// The store of a server on `data_dir`: on the PostgreSQL suite a scratch database of its own per
/// data directory (so a restarted server finds its state), dropped once the directory is gone.
fn store_url(data_dir: &Path) -> Option<String> {
    if !crate::POSTGRES {
        return None;
    }
    #[cfg(feature = "postgres")]
    {
        static DATABASES: Mutex<Vec<(std::path::PathBuf, pg::Scratch)>> = Mutex::new(Vec::new());
        let mut databases = DATABASES.lock().unwrap_or_else(|p| p.into_inner());
        databases.retain(|(dir, _)| dir.exists());
        if let Some((_, db)) = databases.iter().find(|(dir, _)| dir == data_dir) {
            return Some(db.url.clone());
        }
        let db = pg::Scratch::new();
        let url = db.url.clone();
        databases.push((data_dir.to_owned(), db));
        Some(url)
    }
    #[cfg(not(feature = "postgres"))]
    None
}

/// On the Kafka suites, `KAFKA_BROKERS` and `KAFKA_TOPIC_PREFIX` of a server on `data_dir`: a
/// topic prefix (and on tansu a broker) of its own per data directory, so a restarted server
/// finds its topics; removed once the directory is gone. Nothing when the test names a broker.
fn kafka_env(data_dir: &Path, env: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    if !crate::KAFKA || env.iter().any(|(name, _)| *name == "KAFKA_BROKERS") {
        return Vec::new();
    }
    #[cfg(feature = "kafka")]
    {
        static TOPICS: Mutex<Vec<(std::path::PathBuf, kafka::Topics)>> = Mutex::new(Vec::new());
        let mut topics = TOPICS.lock().unwrap_or_else(|p| p.into_inner());
        topics.retain(|(dir, _)| dir.exists());
        let found = topics.iter().position(|(dir, _)| dir == data_dir);
        let at = found.unwrap_or_else(|| {
            topics.push((data_dir.to_owned(), kafka::Topics::new()));
            topics.len() - 1
        });
        let t = &topics[at].1;
        vec![("KAFKA_BROKERS", t.brokers.clone()), ("KAFKA_TOPIC_PREFIX", t.prefix.clone())]
    }
    #[cfg(not(feature = "kafka"))]
    {
        let _ = data_dir;
        Vec::new()
    }
}

/// Whether the servers' message log is on the tests' own tansu broker, which cannot add
/// partitions to a topic nor trim one (docs/kafka.md).
pub fn log_on_tansu() -> bool {
    #[cfg(feature = "kafka")]
    return crate::KAFKA && kafka::on_own_broker();
    #[cfg(not(feature = "kafka"))]
    false
}

/// The `{message_id, receipt_handle}` items of a consume answer's messages, for a batch acknowledgement.
pub fn receipts(consumed: &Value) -> Vec<Value> {
    consumed["messages"]
        .as_array()
        .map(|messages| {
            messages.iter().map(|m| json!({"message_id": m["message_id"], "receipt_handle": m["receipt_handle"]})).collect()
        })
        .unwrap_or_default()
}

/// The status and the JSON body of a response (null when empty or not JSON).
pub async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A valid HS256 token for `sub`.
pub fn token(sub: &str) -> String {
    sign(Algorithm::HS256, SECRET, json!({"sub": sub, "exp": now() + 3600}))
}

pub fn sign(alg: Algorithm, secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret.as_bytes())).expect("signed")
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// Asserts the spec's error shape and code, and answers the details.
pub fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) -> Value {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["error"], want_code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["details"].is_object(), "{body}");
    body["details"].clone()
}

/// Asserts an RFC 3339 UTC timestamp.
pub fn assert_rfc3339(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
    assert!(s.ends_with('Z') && s.len() >= 20 && s.as_bytes()[10] == b'T', "{s} is not RFC 3339 UTC");
}

/// The status and JSON body of a whole HTTP/1.1 response, or None while it is incomplete.
pub fn parse_response(buf: &[u8]) -> Option<(StatusCode, Value)> {
    let (head, body) = std::str::from_utf8(buf).ok()?.split_once("\r\n\r\n")?;
    let status = head.strip_prefix("HTTP/1.1 ").and_then(|s| s.get(..3)?.parse().ok()).expect("a status line");
    let length =
        head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:")?.trim().parse().ok())?;
    let body = body.get(..length)?;
    Some((StatusCode::from_u16(status).unwrap(), serde_json::from_str(body).unwrap_or(Value::Null)))
}
