//! `CallbackReceiver`: a local axum server that plays a subscriber. It records
//! every request and answers a scripted sequence of statuses, then 200.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    }
}

#[derive(Default)]
struct Script {
    answers: VecDeque<(u16, Option<&'static str>)>,
    received: Vec<Received>,
    delay: Duration,
    in_flight: usize,
    most_in_flight: usize,
}

/// A running receiver; stopped when dropped.
pub struct CallbackReceiver {
    pub url: String,
    script: Arc<Mutex<Script>>,
    server: tokio::task::JoinHandle<()>,
}

impl CallbackReceiver {
    /// Answers `statuses` in order (each with an optional `Retry-After`), then 200.
    pub async fn start(statuses: &[(u16, Option<&'static str>)]) -> Self {
        Self::start_slow(statuses, Duration::ZERO).await
    }

    /// Like [`Self::start`], taking `delay` over every answer.
    pub async fn start_slow(statuses: &[(u16, Option<&'static str>)], delay: Duration) -> Self {
        let script =
            Arc::new(Mutex::new(Script { answers: statuses.iter().copied().collect(), delay, ..Script::default() }));
        let app = Router::new().route("/hook", post(answer)).with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, script, server }
    }

    /// The most requests it was answering at once.
    pub fn most_in_flight(&self) -> usize {
        self.script.lock().unwrap().most_in_flight
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }

    /// Waits (at most 10 s) until `n` requests arrived, and answers them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for CallbackReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(State(shared): State<Arc<Mutex<Script>>>, headers: HeaderMap, body: Bytes) -> Response {
    let (status, retry_after, delay) = {
        let mut script = shared.lock().unwrap();
        script.received.push(Received {
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
        });
        script.in_flight += 1;
        script.most_in_flight = script.most_in_flight.max(script.in_flight);
        let (status, retry_after) = script.answers.pop_front().unwrap_or((200, None));
        (status, retry_after, script.delay)
    };
    tokio::time::sleep(delay).await;
    shared.lock().unwrap().in_flight -= 1;
    let status = StatusCode::from_u16(status).unwrap();
    match retry_after {
        Some(seconds) => (status, [("retry-after", seconds)]).into_response(),
        None => status.into_response(),
    }
}
