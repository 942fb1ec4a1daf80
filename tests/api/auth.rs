//! Authentication: missing, malformed, expired, forged and wrong-algorithm tokens are
//! 401 with a reason and a Bearer challenge; exclusive queues belong to their declarer.

use jsonwebtoken::Algorithm;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::helpers::*;

/// Unpadded base64url (RFC 4648 §5), to build tokens no library would sign.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        out.extend((0..=chunk.len()).map(|i| ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char));
    }
    out
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

/// Each refused `Authorization` value (None: no header), named, with a fragment of the reason it gets.
fn refused() -> Vec<(&'static str, Option<String>, &'static str)> {
    let claims = json!({"sub": "mallory", "exp": now() + 3600});
    let (header, payload) = (br#"{"alg":"none","typ":"JWT"}"#, claims.to_string());
    let unsigned = format!("{}.{}.", base64url(header), base64url(payload.as_bytes()));
    let valid = token("alice");
    let mut parts: Vec<&str> = valid.split('.').collect();
    let bob_claims = base64url(json!({"sub": "bob", "exp": now() + 3600}).to_string().as_bytes());
    parts[1] = &bob_claims;
    let tampered = parts.join(".");
    let not_bearer = "the Authorization header must be 'Bearer <token>'";
    vec![
        ("no header", None, "missing Authorization header"),
        ("Basic scheme", Some("Basic dXNlcjpwdw==".into()), not_bearer),
        ("empty Bearer", Some("Bearer ".into()), not_bearer),
        ("not a JWT", bearer("not-a-jwt"), "malformed"),
        (
            "expired an hour ago",
            bearer(&sign(Algorithm::HS256, SECRET, json!({"sub": "a", "exp": now() - 3600}))),
            "expired",
        ),
        ("signed with another secret", bearer(&sign(Algorithm::HS256, "not-the-secret", claims.clone())), "signature"),
        ("payload swapped after signing", bearer(&tampered), "signature"),
        ("no exp claim", bearer(&sign(Algorithm::HS256, SECRET, json!({"sub": "a"}))), "lacks a required claim"),
        ("alg none", bearer(&unsigned), "malformed"),
        ("HS512 with the right secret", bearer(&sign(Algorithm::HS512, SECRET, claims)), "algorithm is not allowed"),
    ]
}

/// One protected endpoint of each family, and GETs.
fn protected() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::POST, "/message-queue/publish", Some(json!({"queue": "guarded", "message": {"n": 1}}))),
        (Method::POST, "/api/v1/messages", Some(json!({"topic": "guarded", "content": "x"}))),
        (Method::GET, "/message-queue/queues/guarded", None),
        (Method::GET, "/api/v1/topics/guarded", None),
    ]
}

/// Sends with exactly the given `Authorization` value; answers the status, body and challenge.
async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Value, Option<String>) {
    let mut req = server.client.request(method, format!("{}{path}", server.base));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    let resp = req.send().await.expect("the server answers");
    let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().expect("ASCII").to_owned());
    let (status, body) = read(resp).await;
    (status, body, challenge)
}

#[tokio::test]
async fn every_bad_token_is_401_with_a_reason_and_a_bearer_challenge_on_both_families() {
    let server = TestServer::start().await;
    for (name, auth, reason) in refused() {
        for (method, path, body) in protected() {
            let (status, answer, challenge) = send(&server, method.clone(), path, auth.as_deref(), body.as_ref()).await;
            let what = format!("{name}: {method} {path} -> {answer}");
            let details = assert_error(status, &answer, 401, "unauthorized");
            assert_eq!(details.as_object().unwrap().len(), 1, "{what}");
            assert!(details["reason"].as_str().is_some_and(|r| r.contains(reason)), "{what}");
            // RFC 6750 3.1: an error code only when credentials were presented.
            let want = if auth.is_some() { "Bearer error=\"invalid_token\"" } else { "Bearer" };
            assert_eq!(challenge.as_deref(), Some(want), "{what}");
        }
    }
    let (status, answer) = server.get("/message-queue/queues/guarded").await;
    assert_error(status, &answer, 404, "queue_not_found"); // nothing got through
}

#[tokio::test]
async fn a_valid_token_works_even_without_sub_or_just_inside_the_leeway() {
    let server = TestServer::start().await;
    let tokens = [
        server.token.clone(),
        sign(Algorithm::HS256, SECRET, json!({"exp": now() + 60})),
        sign(Algorithm::HS256, SECRET, json!({"sub": "late", "exp": now() - 10})),
    ];
    let mut published = 0;
    for token in &tokens {
        for (method, path, body) in protected() {
            let (status, answer, _) = send(&server, method, path, bearer(token).as_deref(), body.as_ref()).await;
            let want = if path == "/api/v1/messages" { StatusCode::CREATED } else { StatusCode::OK };
            assert_eq!(status, want, "{path}: {answer}");
            published += u64::from(body.is_some());
            if path == "/message-queue/queues/guarded" {
                assert_eq!(answer["message_count"], published, "{answer}");
            }
        }
    }
}

#[tokio::test]
async fn both_health_endpoints_answer_200_without_a_token() {
    let server = TestServer::start().await;
    for path in ["/health", "/message-queue/health"] {
        let (status, answer, _) = send(&server, Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        assert_eq!(answer["status"], "healthy", "{path}: {answer}");
    }
}

#[tokio::test]
async fn an_exclusive_queue_is_forbidden_to_other_principals_and_exclusive_cannot_change() {
    let server = TestServer::start().await;
    let (alice, bob) = (bearer(&token("alice")), bearer(&token("bob")));
    let (alice, bob) = (alice.as_deref(), bob.as_deref());
    let path = "/message-queue/queues/private";
    let (status, answer, _) = send(&server, Method::PUT, path, alice, Some(&json!({"exclusive": true}))).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["exclusive"], true, "{answer}");
    let message = json!({"queue": "private", "message": {"secret": 1}});
    let (status, answer, _) = send(&server, Method::POST, "/message-queue/publish", alice, Some(&message)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id_path = format!("/message-queue/messages/{}", answer["message_id"].as_str().unwrap());
    let attempts = [
        (Method::POST, "/message-queue/publish", Some(message.clone())),
        (Method::POST, "/api/v1/messages", Some(json!({"topic": "private", "content": "x"}))),
        (Method::GET, path, None),
        (Method::GET, "/api/v1/topics/private", None),
        (Method::GET, id_path.as_str(), None),
        (Method::PUT, path, Some(json!({"exclusive": true}))),
        (Method::DELETE, path, None),
    ];
    for (method, target, body) in &attempts {
        let (status, answer, _) = send(&server, method.clone(), target, bob, body.as_ref()).await;
        let details = assert_error(status, &answer, 403, "forbidden");
        assert!(details["reason"].as_str().is_some_and(|r| r.contains("exclusive")), "{method} {target}: {answer}");
    }
    let (status, answer, _) = send(&server, Method::GET, path, alice, None).await;
    assert_eq!((status, &answer["message_count"]), (StatusCode::OK, &json!(1)), "bob changed nothing: {answer}");
    let (status, answer, _) = send(&server, Method::GET, &id_path, alice, None).await;
    assert_eq!((status, &answer["message"]), (StatusCode::OK, &json!({"secret": 1})), "{answer}");
    let (status, answer, _) = send(&server, Method::PUT, path, alice, Some(&json!({"exclusive": false}))).await;
    assert!(assert_error(status, &answer, 409, "conflict")["reason"].as_str().unwrap().contains("exclusive"));
    // Nor can a shared queue become exclusive.
    server.publish("shared", json!({"n": 1})).await;
    let (status, answer) = server.put("/message-queue/queues/shared", json!({"exclusive": true})).await;
    assert_error(status, &answer, 409, "conflict");
    let (status, answer, _) = send(&server, Method::DELETE, path, alice, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
}
