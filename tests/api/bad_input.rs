//! Bad input: every refusal has its exact status, error code and details, and a
//! burst of refusals loses or changes nothing already accepted.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinSet,
};

use super::helpers::*;

/// The queue the cases aim at; the burst test keeps two messages in it.
const Q: &str = "orders";
const PUBLISH: &str = "/message-queue/publish";
const SUBSCRIBE: &str = "/message-queue/subscribe";
const PRODUCE: &str = "/api/v1/messages";
const TOPICS: &str = "/api/v1/topics";
const HOOK: &str = "https://example.com/hook";
const JSON: Option<&str> = Some("application/json");
/// `MESSAGE_QUEUE_MAX_SIZE` of the servers that test sizes, and the body limit it implies.
const SMALL: (&str, &str) = ("MESSAGE_QUEUE_MAX_SIZE", "1024");
const BODY_LIMIT: usize = 1024 + 65_536;

enum Request {
    Http {
        method: Method,
        path: String,
        content_type: Option<&'static str>,
        body: Option<String>,
    },
    /// Bytes written as they are on a fresh connection.
    Tcp(Vec<u8>),
}

/// A bad request and its refusal: `details` holds every key the answer's details must have;
/// an `issue` is matched as a fragment, everything else exactly.
struct Case {
    request: Request,
    status: u16,
    code: &'static str,
    details: Value,
}

fn http(method: Method, path: &str, content_type: Option<&'static str>, body: Option<String>) -> Request {
    Request::Http { method, path: path.to_owned(), content_type, body }
}

fn post(path: &str, body: Value) -> Request {
    http(Method::POST, path, JSON, Some(body.to_string()))
}

fn case(request: Request, status: u16, code: &'static str, details: Value) -> Case {
    Case { request, status, code, details }
}

/// 400 naming the field: `invalid_message` for the content fields, `invalid_request` for the rest.
fn refused(request: Request, field: &str, issue: &str) -> Case {
    let code = if matches!(field, "message" | "content") { "invalid_message" } else { "invalid_request" };
    case(request, 400, code, json!({"field": field, "issue": issue}))
}

/// POSTed JSON bodies, each refused with 400 naming `field`.
fn bodies(table: Vec<(&str, Value, &str, &str)>) -> Vec<Case> {
    table.into_iter().map(|(path, body, field, issue)| refused(post(path, body), field, issue)).collect()
}

/// `base` with the fields of `extra` added or replaced.
fn with(mut base: Value, extra: Value) -> Value {
    extra.as_object().expect("an object").iter().for_each(|(k, v)| base[k] = v.clone());
    base
}

fn syntax_cases() -> Vec<Case> {
    let bad = |path, body: &str, issue, line: u64, column: u64| {
        let details = json!({"issue": issue, "line": line, "column": column});
        case(http(Method::POST, path, JSON, Some(body.to_owned())), 400, "invalid_json", details)
    };
    vec![
        bad(PUBLISH, r#"{"queue": "orders", "message": }"#, "expected value", 1, 32),
        bad(PUBLISH, "{\n  \"queue\": \"orders\",\n  \"message\": [1, 2,]\n}", "trailing comma", 3, 20),
        bad(PRODUCE, r#"{topic: "orders", "content": "x"}"#, "key must be a string", 1, 2),
        bad(PUBLISH, r#"{"queue": "orders", "message": 1"#, "EOF while parsing an object", 1, 32),
        bad(PUBLISH, "", "the request body is empty", 1, 0),
        bad(PRODUCE, " \n ", "the request body is empty", 2, 1),
        bad(PUBLISH, r#"{"queue": "orders", "message": 1} x"#, "trailing characters", 1, 35),
        bad(PRODUCE, r#"{"topic": "orders", "content": "x"}{}"#, "trailing characters", 1, 36),
    ]
}

fn type_cases() -> Vec<Case> {
    let msg = |extra| with(json!({"queue": Q, "message": {"n": 1}}), extra);
    let v1 = |extra| with(json!({"topic": Q, "content": "x"}), extra);
    let topic = |extra| with(json!({"name": "t"}), extra);
    bodies(vec![
        (PUBLISH, json!({"queue": 5, "message": 1}), "queue", "invalid type: integer `5`, expected a string"),
        (PUBLISH, msg(json!({"ttl": "abc"})), "ttl", "invalid type: string \"abc\", expected u64"),
        (PUBLISH, msg(json!({"ttl": -1})), "ttl", "invalid value: integer `-1`, expected u64"),
        (PUBLISH, msg(json!({"persistent": "yes"})), "persistent", "string \"yes\", expected a boolean"),
        (PUBLISH, msg(json!({"headers": []})), "headers", "invalid type: sequence, expected a map"),
        (PRODUCE, v1(json!({"content": 123})), "content", "invalid type: integer `123`, expected a string"),
        (PRODUCE, v1(json!({"priority": 300})), "priority", "invalid value: integer `300`, expected u8"),
        (PRODUCE, v1(json!({"headers": {"a": 1}})), "headers.a", "invalid type: integer `1`, expected a string"),
        (PRODUCE, v1(json!({"ttl": "soon"})), "ttl", "\"soon\" is not a duration"),
        (TOPICS, topic(json!({"partitions": 0})), "partitions", "must be 1 to 1024"),
        (TOPICS, topic(json!({"retention": "abc"})), "retention", "\"abc\" is not a duration"),
        (TOPICS, topic(json!({"max_size": "big"})), "max_size", "must be a number of bytes"),
    ])
}

fn missing_and_empty_cases() -> Vec<Case> {
    let msg = |message| json!({"queue": Q, "message": message});
    bodies(vec![
        (PUBLISH, json!({"message": {"n": 1}}), "queue", "is required"),
        (PUBLISH, json!({"queue": Q}), "message", "Message content is required"),
        (PRODUCE, json!({"content": "x"}), "topic", "is required"),
        (PRODUCE, json!({"topic": Q}), "content", "is required"),
        (SUBSCRIBE, json!({"queue": Q}), "callback_url", "is required"),
        (SUBSCRIBE, json!({"callback_url": HOOK}), "queue", "is required"),
        (TOPICS, json!({"partitions": 1}), "name", "is required"),
        (PUBLISH, msg(json!("")), "message", "must not be empty"),
        (PUBLISH, msg(json!({})), "message", "must not be empty"),
        (PUBLISH, msg(json!([])), "message", "must not be empty"),
        (PUBLISH, msg(Value::Null), "message", "Message content is required"),
        (PRODUCE, json!({"topic": Q, "content": ""}), "content", "Message content is required"),
    ])
}

fn unknown_field_cases() -> Vec<Case> {
    let (known, retry) = ("is not a known field (expected", json!({"jitter": true}));
    let declare = |body: Value| http(Method::PUT, "/message-queue/queues/orders", JSON, Some(body.to_string()));
    let mut cases = bodies(vec![
        (PUBLISH, json!({"queue": Q, "message": 1, "priority": 1}), "priority", known),
        (PRODUCE, json!({"topic": Q, "content": "x", "queue": Q}), "queue", known),
        (TOPICS, json!({"name": "t", "partition": 3}), "partition", known),
        (SUBSCRIBE, json!({"queue": Q, "callback_url": HOOK, "retry_policy": retry}), "retry_policy.jitter", known),
    ]);
    cases.push(refused(declare(json!({"arguments": {"x-foo": 1}})), "arguments.x-foo", "unknown argument"));
    cases.push(refused(declare(json!({"durable": true, "type": "quorum"})), "type", known));
    cases
}

fn name_cases() -> Vec<Case> {
    let long = "x".repeat(250);
    let (chars, too_long) = ("may hold only letters, digits", "must be at most 249 bytes, got 250");
    let mut cases = bodies(vec![
        (PUBLISH, json!({"queue": "a b", "message": 1}), "queue", chars),
        (PUBLISH, json!({"queue": long, "message": 1}), "queue", too_long),
        (PUBLISH, json!({"queue": "..", "message": 1}), "queue", "must not be '.' or '..'"),
        (PRODUCE, json!({"topic": "a/b", "content": "x"}), "topic", chars),
        (PRODUCE, json!({"topic": long, "content": "x"}), "topic", too_long),
        (TOPICS, json!({"name": "bad name"}), "name", chars),
        (TOPICS, json!({"name": ""}), "name", "must not be empty"),
        (SUBSCRIBE, json!({"queue": "a*b", "callback_url": HOOK}), "queue", chars),
        (SUBSCRIBE, json!({"queue": Q, "callback_url": HOOK, "dead_letter_queue": "a b"}), "dead_letter_queue", chars),
    ]);
    let in_path = [
        (Method::GET, "/message-queue/queues/a%20b".to_owned(), "queue_name", chars),
        (Method::GET, format!("/message-queue/queues/{long}"), "queue_name", too_long),
        (Method::DELETE, "/message-queue/queues/%C3%A9t%C3%A9".to_owned(), "queue_name", chars),
        (Method::PUT, format!("/message-queue/queues/{long}"), "queue_name", too_long),
        (Method::GET, "/api/v1/topics/a%20b".to_owned(), "name", chars),
        (Method::GET, format!("/api/v1/topics/{long}"), "name", too_long),
    ];
    for (method, path, field, issue) in in_path {
        let body = (method == Method::PUT).then(|| "{}".to_owned());
        cases.push(refused(http(method, &path, JSON, body), field, issue));
    }
    cases
}

fn range_cases() -> Vec<Case> {
    let sub = |extra| with(json!({"queue": Q, "callback_url": HOOK}), extra);
    let retry = |policy| sub(json!({"retry_policy": policy}));
    let url = |callback_url| json!({"queue": Q, "callback_url": callback_url});
    bodies(vec![
        (PUBLISH, json!({"queue": Q, "message": 1, "ttl": 0}), "ttl", "must be 1 to 31536000 seconds"),
        (PUBLISH, json!({"queue": Q, "message": 1, "ttl": 31_536_001}), "ttl", "must be 1 to 31536000 seconds"),
        (SUBSCRIBE, sub(json!({"prefetch_count": 0})), "prefetch_count", "must be 1 to 1000"),
        (SUBSCRIBE, sub(json!({"prefetch_count": 1001})), "prefetch_count", "must be 1 to 1000"),
        (SUBSCRIBE, retry(json!({"backoff_multiplier": 0.5})), "retry_policy.backoff_multiplier", "must be 1 to 10"),
        (SUBSCRIBE, retry(json!({"max_retries": 101})), "retry_policy.max_retries", "must be 0 to 100"),
        (SUBSCRIBE, retry(json!({"retry_delay": 86_400_001})), "retry_policy.retry_delay", "must be 0 to 86400000"),
        (SUBSCRIBE, url("ftp://x/y"), "callback_url", "scheme \"ftp\" is not allowed"),
        (SUBSCRIBE, url("/relative"), "callback_url", "must be an absolute http(s) URL"),
        (SUBSCRIBE, url("https://user:pw@h/x"), "callback_url", "must not carry credentials"),
        (PRODUCE, json!({"topic": Q, "content": "x", "ttl": "999us"}), "ttl", "must be at least 1ms"),
        (TOPICS, json!({"name": "t", "replication": 0}), "replication", "must be 1 to 32767"),
        (TOPICS, json!({"name": "t", "max_size": 0}), "max_size", "must be at least 1 byte"),
    ])
}

/// Refusals of size; they expect a server with [`SMALL`].
fn size_cases() -> Vec<Case> {
    let too_large =
        |request, limit: usize, size| case(request, 413, "payload_too_large", json!({"limit": limit, "size": size}));
    let padding = BODY_LIMIT + 1 - r#"{"queue":"orders","message":""}"#.len();
    let over_limit = format!(r#"{{"queue":"orders","message":"{}"}}"#, "x".repeat(padding));
    let head = |framing: &str| {
        let auth = format!("Authorization: Bearer {}", token("test-user"));
        format!("POST {PUBLISH} HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n")
    };
    let mut chunked = head("Transfer-Encoding: chunked").into_bytes();
    chunked.extend(b"12\r\n{\"queue\":\"orders\",\r\n");
    (0..10).for_each(|_| chunked.extend(format!("2000\r\n{}\r\n", "x".repeat(0x2000)).into_bytes()));
    chunked.extend(b"0\r\n\r\n");
    let large = "x".repeat(2048);
    vec![
        too_large(post(PUBLISH, json!({"queue": Q, "message": large})), 1024, json!(2050)),
        too_large(post(PRODUCE, json!({"topic": Q, "content": large})), 1024, json!(2048)),
        too_large(http(Method::POST, PUBLISH, JSON, Some(over_limit)), BODY_LIMIT, json!(BODY_LIMIT + 1)),
        too_large(Request::Tcp(head("Content-Length: 1000000000").into_bytes()), BODY_LIMIT, json!(1_000_000_000)),
        too_large(Request::Tcp(chunked), BODY_LIMIT, Value::Null),
    ]
}

fn not_found_cases() -> Vec<Case> {
    let at = |method, path: &str, status, code, details| case(http(method, path, None, None), status, code, details);
    let mut cases = vec![
        at(Method::GET, "/message-queue/queues/nope", 404, "queue_not_found", json!({"queue": "nope"})),
        at(Method::DELETE, "/message-queue/queues/nope", 404, "queue_not_found", json!({"queue": "nope"})),
        at(Method::GET, "/api/v1/topics/nope", 404, "topic_not_found", json!({"topic": "nope"})),
        at(Method::GET, "/no/such/route", 404, "not_found", json!({"method": "GET", "path": "/no/such/route"})),
        at(Method::POST, "/api/v2/messages", 404, "not_found", json!({"method": "POST", "path": "/api/v2/messages"})),
        at(Method::DELETE, PUBLISH, 405, "method_not_allowed", json!({"method": "DELETE", "path": PUBLISH})),
        at(Method::GET, PUBLISH, 405, "method_not_allowed", json!({"method": "GET", "path": PUBLISH})),
    ];
    // `msg_x03g000` is well formed: queue id 1000, partition 0, offset 0; no test makes 1000 queues.
    for id in ["msg_123456789", "nonsense", "msg_x03g000"] {
        let path = format!("/message-queue/messages/{id}");
        cases.push(at(Method::GET, &path, 404, "message_not_found", json!({"message_id": id})));
    }
    cases
}

/// Refusals the framework makes before a handler runs: path segments that are not UTF-8
/// once decoded, query strings of the wrong shape.
fn rejection_cases() -> Vec<Case> {
    let utf8 = |method: Method, path: &str, field: &str| {
        let details = json!({"field": field, "issue": "not valid UTF-8"});
        case(http(method, path, JSON, Some(json!({}).to_string())), 400, "invalid_request", details)
    };
    let mut cases = Vec::new();
    for segment in ["%ff", "orders%fe%ff", "%c3%28", "%ed%a0%80"] {
        let queue = format!("/message-queue/queues/{segment}");
        let message = format!("/message-queue/messages/{segment}");
        let subscription = format!("/message-queue/subscriptions/{segment}");
        cases.extend([
            utf8(Method::GET, &queue, "queue_name"),
            utf8(Method::PUT, &queue, "queue_name"),
            utf8(Method::DELETE, &queue, "queue_name"),
            utf8(Method::GET, &format!("/api/v1/topics/{segment}"), "name"),
            utf8(Method::GET, &message, "message_id"),
            utf8(Method::POST, &format!("{message}/acknowledge"), "message_id"),
            utf8(Method::POST, &format!("{message}/reject"), "message_id"),
            utf8(Method::GET, &subscription, "subscription_id"),
            utf8(Method::DELETE, &subscription, "subscription_id"),
            utf8(Method::POST, &format!("{subscription}/pause"), "subscription_id"),
            utf8(Method::POST, &format!("{subscription}/resume"), "subscription_id"),
            utf8(Method::POST, &format!("{subscription}/secret"), "subscription_id"),
        ]);
    }
    let query = |query: &str, field: &str, issue: &str| {
        let path = format!("/message-queue/subscriptions?{query}");
        case(http(Method::GET, &path, None, None), 400, "invalid_request", json!({"field": field, "issue": issue}))
    };
    cases.extend([
        query("topic=orders", "topic", "is not a known field"),
        query("queue=a&queue=b", "queue", "duplicate field"),
        query("queue=%ff", "queue", "may hold only"),
    ]);
    cases
}

fn media_type_cases() -> Vec<Case> {
    let body = json!({"queue": Q, "message": 1}).to_string();
    let types =
        [(PUBLISH, "text/plain"), (PUBLISH, ""), (PRODUCE, "text/plain; charset=utf-8"), (TOPICS, "application/xml")];
    let refuse = |(path, content_type): (&str, &'static str)| {
        let named = if content_type.is_empty() { "(none)" } else { content_type };
        let details = json!({"content_type": named, "expected": "application/json"});
        let request = http(Method::POST, path, Some(content_type).filter(|t| !t.is_empty()), Some(body.clone()));
        case(request, 415, "unsupported_media_type", details)
    };
    types.into_iter().map(refuse).collect()
}

/// Publishing to an unknown queue; it expects a server with `MESSAGE_QUEUE_AUTO_CREATE=false`.
fn auto_create_off_cases() -> Vec<Case> {
    vec![
        case(post(PUBLISH, json!({"queue": "ghost", "message": 1})), 404, "queue_not_found", json!({"queue": "ghost"})),
        case(
            post(PRODUCE, json!({"topic": "ghost", "content": "x"})),
            404,
            "topic_not_found",
            json!({"topic": "ghost"}),
        ),
    ]
}

/// Sends a case's request and checks the refusal it gets.
async fn expect(server: &TestServer, case: &Case) {
    let (label, (status, answer)) = match &case.request {
        Request::Http { method, path, content_type, body } => {
            let mut req = server.client.request(method.clone(), format!("{}{path}", server.base));
            req = req.bearer_auth(&server.token).body(body.clone().unwrap_or_default());
            if let Some(content_type) = content_type {
                req = req.header("content-type", *content_type);
            }
            let label = format!("{method} {path} {:.100}", body.as_deref().unwrap_or(""));
            (label, read(req.send().await.expect("the server answers")).await)
        }
        Request::Tcp(bytes) => {
            (format!("{:.100}", String::from_utf8_lossy(bytes)), over_tcp(server, bytes.clone()).await)
        }
    };
    let what = format!("{label} -> {status} {answer}");
    assert_eq!(status.as_u16(), case.status, "{what}");
    let details = assert_error(status, &answer, case.status, case.code);
    let keys = |v: &Value| v.as_object().expect("an object").keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(keys(&details), keys(&case.details), "{what}");
    for (key, want) in case.details.as_object().expect("an object") {
        match want.as_str() {
            Some(fragment) if key == "issue" => assert!(details[key].as_str().unwrap().contains(fragment), "{what}"),
            _ => assert_eq!(&details[key], want, "{what}"),
        }
    }
}

async fn expect_all(server: &TestServer, cases: Vec<Case>) {
    for case in &cases {
        expect(server, case).await;
    }
}

/// Writes `request` on a fresh connection, in the background as the server may answer before
/// reading it all, and reads the answer's status line and JSON body within 10 s.
async fn over_tcp(server: &TestServer, request: Vec<u8>) -> (StatusCode, Value) {
    let stream = TcpStream::connect(server.base.trim_start_matches("http://")).await.expect("connects");
    let (mut rx, mut tx) = stream.into_split();
    // The write half stays open: the request ends where its headers say, not at a closed socket.
    let writer = tokio::spawn(async move { tx.write_all(&request).await.map(|()| tx) });
    let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(answer) = parse_response(&buf) {
                return answer;
            }
            let n = rx.read(&mut chunk).await.unwrap_or(0);
            assert!(n > 0, "the connection ended without a whole answer: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        }
    });
    let answer = answer.await.expect("the server answers within 10 s");
    writer.abort();
    answer
}

#[tokio::test]
async fn malformed_empty_and_trailing_json_is_400_invalid_json_with_line_and_column() {
    expect_all(&TestServer::start().await, syntax_cases()).await;
}

#[tokio::test]
async fn wrong_types_are_400_naming_the_field() {
    expect_all(&TestServer::start().await, type_cases()).await;
}

#[tokio::test]
async fn missing_required_fields_and_empty_messages_are_400_naming_the_field() {
    expect_all(&TestServer::start().await, missing_and_empty_cases()).await;
}

#[tokio::test]
async fn unknown_fields_are_400_naming_the_field_even_when_nested() {
    expect_all(&TestServer::start().await, unknown_field_cases()).await;
}

#[tokio::test]
async fn illegal_names_are_400_in_bodies_and_paths_but_249_bytes_is_fine() {
    let server = TestServer::start().await;
    expect_all(&server, name_cases()).await;
    server.publish(&"x".repeat(249), json!({"n": 1})).await;
}

#[tokio::test]
async fn out_of_range_values_are_400_naming_the_field() {
    expect_all(&TestServer::start().await, range_cases()).await;
}

#[tokio::test]
async fn oversized_messages_and_bodies_are_413_even_unread_but_the_limit_itself_is_fine() {
    let server = TestServer::start_with(&[SMALL]).await;
    expect_all(&server, size_cases()).await;
    server.publish(Q, json!("x".repeat(1022))).await; // 1024 bytes with its quotes
}

#[tokio::test]
async fn unknown_queues_topics_messages_routes_and_methods_are_404_or_405_naming_them() {
    let server = TestServer::start().await;
    expect_all(&server, not_found_cases()).await;
    // The id of a message whose queue was deleted locates nothing either.
    let id = server.publish("doomed", json!({"n": 1})).await;
    assert_eq!(server.call(Method::DELETE, "/message-queue/queues/doomed", None).await.0, StatusCode::NO_CONTENT);
    let path = format!("/message-queue/messages/{id}");
    expect(&server, &case(http(Method::GET, &path, None, None), 404, "message_not_found", json!({"message_id": id})))
        .await;
}

#[tokio::test]
async fn framework_refusals_of_paths_and_queries_are_400_in_the_error_shape() {
    expect_all(&TestServer::start().await, rejection_cases()).await;
}

#[tokio::test]
async fn publishing_to_an_unknown_queue_with_auto_create_off_is_404_and_creates_nothing() {
    let server = TestServer::start_with(&[("MESSAGE_QUEUE_AUTO_CREATE", "false")]).await;
    expect_all(&server, auto_create_off_cases()).await;
    let (status, answer) = server.get("/message-queue/queues/ghost").await;
    assert_eq!(assert_error(status, &answer, 404, "queue_not_found")["queue"], "ghost");
}

#[tokio::test]
async fn a_missing_or_non_json_content_type_is_415_but_json_variants_are_accepted() {
    let server = TestServer::start().await;
    expect_all(&server, media_type_cases()).await;
    for content_type in ["application/json; charset=utf-8", "application/vnd.api+json", "Application/JSON"] {
        let (status, answer) =
            server.raw(Method::POST, PUBLISH, Some(content_type), r#"{"queue":"q","message":1}"#).await;
        assert_eq!(status, StatusCode::OK, "{content_type}: {answer}");
    }
}

#[tokio::test]
async fn a_burst_of_every_bad_request_loses_or_changes_nothing_already_accepted() {
    let server = Arc::new(TestServer::start_with(&[SMALL, ("MESSAGE_QUEUE_AUTO_CREATE", "false")]).await);
    assert_eq!(server.put(&format!("/message-queue/queues/{Q}"), json!({})).await.0, StatusCode::CREATED);
    let ids = [server.publish(Q, json!({"n": 1})).await, server.publish(Q, json!("second")).await];
    let snapshot = async || {
        let mut messages = Vec::new();
        for id in &ids {
            let (status, message) = server.get(&format!("/message-queue/messages/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{message}");
            messages.push(message);
        }
        (messages, server.get(&format!("/message-queue/queues/{Q}")).await.1)
    };
    let (before, queue_before) = snapshot().await;
    assert_eq!((&before[0]["message"], &before[1]["message"]), (&json!({"n": 1}), &json!("second")));
    let tables = [syntax_cases(), type_cases(), missing_and_empty_cases(), unknown_field_cases(), name_cases()];
    let more = [range_cases(), size_cases(), not_found_cases(), media_type_cases(), auto_create_off_cases()];
    let more = more.into_iter().chain([rejection_cases()]);
    let mut burst = JoinSet::new();
    for case in tables.into_iter().chain(more).flatten() {
        let server = server.clone();
        burst.spawn(async move { expect(&server, &case).await });
    }
    burst.join_all().await;
    let (after, queue_after) = snapshot().await;
    assert_eq!(after, before, "an accepted message changed");
    assert_eq!(queue_after["message_count"], 2, "{queue_after}");
    assert_eq!(queue_after["statistics"]["messages_published"], 2, "{queue_after}");
    assert_eq!(queue_after["message_count"], queue_before["message_count"]);
}
