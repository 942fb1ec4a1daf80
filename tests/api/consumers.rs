//! `POST /api/v1/consumers`: a registered consumer is answered, kept to its topics and held to its
//! `max_concurrency` and `rate_limit`; unregistered consumers are held to nothing.

use reqwest::StatusCode;
use serde_json::json;

use super::{
    consume::{assert_fields, consume, publish_n, try_consume},
    helpers::*,
};

#[tokio::test]
async fn a_registered_consumer_is_answered_and_kept_to_its_topics() {
    let server = TestServer::start().await;
    let reg = json!({"consumer_id": "c", "group_id": "g", "topics": ["mine", "ours"], "max_concurrency": 4, "rate_limit": 50});
    let (status, answer) = server.post("/api/v1/consumers", reg.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_fields(&answer, reg);
    assert_rfc3339(&answer["registered_at"]);
    server.publish("mine", json!({"n": 1})).await;
    server.publish("theirs", json!({"n": 1})).await;
    assert_eq!(consume(&server, "mine", "g", "c", json!({})).await.len(), 1);
    let (status, answer) = try_consume(&server, "theirs", "g", "c", json!({})).await;
    assert_error(status, &answer, 403, "forbidden");
    assert_eq!(consume(&server, "theirs", "g", "free", json!({})).await.len(), 1, "unregistered consumers are free");
    let invalid = [("topics", json!([])), ("max_concurrency", json!(0)), ("rate_limit", json!(0))];
    for (field, bad) in invalid {
        let mut body = json!({"consumer_id": "z", "group_id": "g", "topics": ["mine"]});
        body[field] = bad;
        let (status, answer) = server.post("/api/v1/consumers", body).await;
        assert_eq!(assert_error(status, &answer, 400, "invalid_request")["field"], field);
    }
}

#[tokio::test]
async fn a_registered_consumer_gets_no_more_than_its_limits_allow_but_its_unregistered_group_mates_do() {
    let server = TestServer::start().await;
    publish_n(&server, "limited", 12).await;
    // (consumer, its group, its limit, what one consume of 10 gets before 429)
    let cases = [("c", "g", "max_concurrency", 2), ("r", "h", "rate_limit", 5)];
    for (consumer, group, limit, n) in cases {
        let mut reg = json!({"consumer_id": consumer, "group_id": group, "topics": ["limited"]});
        reg[limit] = json!(n);
        server.post("/api/v1/consumers", reg).await;
        let held = consume(&server, "limited", group, consumer, json!({})).await;
        assert_eq!(held.len(), n, "{limit}");
        let (status, answer) = try_consume(&server, "limited", group, consumer, json!({})).await;
        assert_eq!(assert_error(status, &answer, 429, "rate_limit_exceeded")["limit"], n, "{limit}");
        let (status, answer) = try_consume(&server, "limited", group, consumer, json!({"max_messages": 1})).await;
        assert_error(status, &answer, 429, "rate_limit_exceeded");
        if limit == "max_concurrency" {
            let ack =
                json!({"message_id": held[0]["message_id"], "topic": "limited", "success": true, "group_id": "g"});
            assert_eq!(server.post("/api/v1/messages/acknowledge", ack).await.0, StatusCode::OK);
            assert_eq!(consume(&server, "limited", group, consumer, json!({})).await.len(), 1, "one slot freed");
            assert_eq!(
                try_consume(&server, "limited", group, consumer, json!({})).await.0,
                StatusCode::TOO_MANY_REQUESTS
            );
            let free = consume(&server, "limited", group, "free", json!({})).await;
            assert_eq!(free.len(), 12 - 3, "an unregistered consumer of the same group is free");
        }
    }
}
