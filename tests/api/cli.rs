//! The command line: help, version and unknown arguments start nothing; `token`
//! prints a token its server accepts; bad start-up settings are named.

use std::process::{Command, Output};

use reqwest::{Method, StatusCode};

use super::helpers::*;

/// Runs the binary in a fresh working directory; answers its output and whether it made `./data`.
fn run(args: &[&str], env: &[(&str, &str)]) -> (Output, bool) {
    let cwd = tempfile::TempDir::new().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_message-queue"))
        .args(args)
        .current_dir(cwd.path())
        .env_remove("MESSAGE_QUEUE_DATA_DIR")
        .env_remove("JWT_SECRET")
        .env("MESSAGE_QUEUE_PORT", "0")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("PPROF_ADDR", "127.0.0.1:0")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    (output, cwd.path().join("data").exists())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version_print_and_start_nothing() {
    for args in [&["--help"][..], &["-h"], &["help"], &["help", "token"], &["token", "--help"]] {
        let (out, made_data) = run(args, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert!(!made_data, "{args:?} made ./data");
        assert!(text(&out.stdout).contains("Usage: message-queue"), "{args:?}: {}", text(&out.stdout));
    }
    let (out, _) = run(&["--help"], &[]);
    let help = text(&out.stdout);
    for expected in ["serve", "token", "MESSAGE_QUEUE_DATA_DIR", "JWT_SECRET", "MESSAGE_QUEUE_BODY_TIMEOUT"] {
        assert!(help.contains(expected), "--help lacks {expected}: {help}");
    }
    for args in [&["--version"][..], &["-V"]] {
        let (out, made_data) = run(args, &[]);
        assert!(out.status.success() && !made_data);
        assert_eq!(text(&out.stdout).trim(), format!("message-queue {}", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn unknown_arguments_are_refused_and_start_nothing() {
    for args in [&["--bogus"][..], &["bogus"], &["-x"], &["serve", "extra"], &["token", "--ttl"]] {
        let (out, made_data) = run(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stdout));
        assert!(!made_data, "{args:?} made ./data");
        assert!(text(&out.stderr).contains("error:"), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn start_up_errors_name_what_is_wrong() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let below_a_file = file.path().join("data");
    let (out, _) = run(&[], &[("MESSAGE_QUEUE_DATA_DIR", below_a_file.to_str().unwrap())]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("cannot use the data directory {}", below_a_file.display())), "{stderr}");
    assert!(!stderr.contains("jwt-secret") && !stderr.contains("JWT"), "{stderr}");

    let (out, made_data) = run(&[], &[("JWT_SECRET", "only-twenty-bytes-xx")]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success() && !made_data);
    assert!(stderr.contains("JWT_SECRET") && stderr.contains("at least 32"), "{stderr}");
    assert!(!stderr.contains("only-twenty-bytes-xx"), "the secret was printed: {stderr}");
}

#[tokio::test]
async fn the_printed_token_is_accepted_by_its_server_with_issuer_and_audience() {
    let claims = [("JWT_ISSUER", "https://issuer.example"), ("JWT_AUDIENCE", "message-queue")];
    let server = TestServer::start_with(&claims).await;
    let (out, _) = run(&["token", "--subject", "cli-user"], &[&[("JWT_SECRET", SECRET)], &claims[..]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout).trim().to_owned();
    let url = format!("{}/message-queue/queues", server.base);
    let resp = server.client.request(Method::GET, &url).bearer_auth(&printed).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
    // The suite's own token has neither claim: refused by this server.
    let (status, answer) = server.get("/message-queue/queues").await;
    assert_error(status, &answer, 401, "unauthorized");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let server = TestServer::start().await;
    let url = format!("{}/api/v1/topics/none", server.base);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let header = format!("{scheme} {}", server.token);
        let resp = server.client.get(&url).header("authorization", header).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{scheme}");
    }
}

#[tokio::test]
async fn the_store_is_chosen_by_url_and_an_unusable_one_is_named() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("elsewhere").join("custom.sqlite3");
    let url = format!("sqlite://{}", file.display());
    let server = TestServer::start_with(&[("MESSAGE_QUEUE_STORE", url.as_str())]).await;
    server.publish("stored", serde_json::json!({"n": 1})).await;
    assert!(file.exists(), "the store is the file the URL names");
    for (variable, value, says) in [
        ("MESSAGE_QUEUE_STORE", "postgres://mq:secret@127.0.0.1:1/mq", "PostgreSQL"),
        ("MESSAGE_QUEUE_STORE", "dynamodb://mq-table", "no dynamodb store"),
        ("MESSAGE_QUEUE_STORE", "redis://127.0.0.1", "not one of sqlite, postgres, dynamodb"),
        ("KAFKA_BROKERS", "127.0.0.1:1", if cfg!(feature = "kafka") { "do not answer" } else { "no Kafka message log" }),
    ] {
        let (out, _) = run(&[], &[(variable, value)]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{variable}={value} started");
        assert!(stderr.contains(variable) && stderr.contains(says), "{variable}={value}: {stderr}");
        assert!(!stderr.contains("secret"), "a password was printed: {stderr}");
    }
}
