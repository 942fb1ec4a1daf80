//! Authentication: missing, malformed, expired, forged and wrong-algorithm
//! tokens are 401 in the spec's shape; exclusive queues belong to their declarer.

use jsonwebtoken::Algorithm;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::helpers::*;

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Every header value that must be refused, named.
fn refused() -> Vec<(&'static str, Option<String>)> {
    let claims = json!({"sub": "mallory", "exp": now() + 3600});
    let unsigned =
        format!("{}.{}.", base64url(br#"{"alg":"none","typ":"JWT"}"#), base64url(claims.to_string().as_bytes()));
    vec![
        ("no header", None),
        ("basic scheme", Some("Basic dXNlcjpwdw==".into())),
        ("empty bearer", Some("Bearer ".into())),
        ("not a jwt", Some("Bearer not-a-jwt".into())),
        (
            "expired",
            Some(format!("Bearer {}", sign(Algorithm::HS256, SECRET, json!({"sub": "a", "exp": now() - 3600})))),
        ),
        ("forged", Some(format!("Bearer {}", sign(Algorithm::HS256, "another-secret", claims.clone())))),
        ("no exp", Some(format!("Bearer {}", sign(Algorithm::HS256, SECRET, json!({"sub": "a"}))))),
        ("alg none", Some(format!("Bearer {unsigned}"))),
        ("HS512", Some(format!("Bearer {}", sign(Algorithm::HS512, SECRET, claims)))),
    ]
}

async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = server.client.request(method, format!("{}{path}", server.base));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn bad_tokens_are_401_on_every_family() {
    let server = TestServer::start().await;
    let endpoints = [
        (Method::POST, "/message-queue/publish", Some(json!({"queue": "q", "message": 1}))),
        (Method::POST, "/api/v1/messages", Some(json!({"topic": "q", "content": "x"}))),
        (Method::GET, "/message-queue/queues", None),
    ];
    for (name, auth) in refused() {
        for (method, path, body) in &endpoints {
            let resp = send(&server, method.clone(), path, auth.as_deref(), body.clone()).await;
            let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
            let (status, answer) = read(resp).await;
            let details = assert_error(status, &answer, 401, "unauthorized");
            assert!(details["reason"].as_str().is_some_and(|r| !r.is_empty()), "{name}: {answer}");
            assert!(challenge.is_some_and(|c| c.starts_with("Bearer")), "{name}");
        }
    }
    let (status, _) = server.get("/message-queue/queues/q").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was published with a bad token");
}

#[tokio::test]
async fn good_tokens_work_with_or_without_a_subject() {
    let server = TestServer::start().await;
    let anonymous = sign(Algorithm::HS256, SECRET, json!({"exp": now() + 60}));
    for auth in [format!("Bearer {}", server.token), format!("Bearer {anonymous}")] {
        let resp = send(
            &server,
            Method::POST,
            "/message-queue/publish",
            Some(&auth),
            Some(json!({"queue": "q", "message": 1})),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn health_needs_no_token() {
    let server = TestServer::start().await;
    for path in ["/health", "/message-queue/health"] {
        assert_eq!(send(&server, Method::GET, path, None, None).await.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn an_exclusive_queue_belongs_to_its_declarer() {
    let server = TestServer::start().await;
    let (alice, bob) = (format!("Bearer {}", token("alice")), format!("Bearer {}", token("bob")));
    let declare = Some(json!({"exclusive": true}));
    let resp = send(&server, Method::PUT, "/message-queue/queues/private", Some(&alice), declare).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let publish = || Some(json!({"queue": "private", "message": 1}));
    let attempts = [
        (Method::POST, "/message-queue/publish", publish()),
        (Method::GET, "/message-queue/queues/private", None),
        (Method::DELETE, "/message-queue/queues/private", None),
    ];
    for (method, path, body) in &attempts {
        let (status, answer) = read(send(&server, method.clone(), path, Some(&bob), body.clone()).await).await;
        assert_error(status, &answer, 403, "forbidden");
    }
    let resp = send(&server, Method::POST, "/message-queue/publish", Some(&alice), publish()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let flip = Some(json!({"exclusive": false}));
    let (status, answer) =
        read(send(&server, Method::PUT, "/message-queue/queues/private", Some(&alice), flip).await).await;
    assert_error(status, &answer, 409, "conflict");
}
