//! The local server: every route of both API families in one process, on the
//! embedded SQLite file. `message-queue token` prints a bearer token instead.

use std::{process::ExitCode, time::Duration};

use shared::{app::App, auth, config::Config, http};
use tracing_subscriber::filter::{LevelFilter, Targets};

/// glibc's allocator spends a fifth of the publish path's time in malloc and free; mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long a printed token stays valid: 30 days.
const TOKEN_TTL_SECS: u64 = 30 * 86_400;
/// How often retention is applied.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    init_tracing();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let (secret, generated) = match &config.jwt.secret {
        Some(s) => (s.clone(), false),
        None => match auth::local_secret(&config.data_dir) {
            Ok(s) => (s, true),
            Err(e) => return fail(&format!("cannot keep a JWT secret in {}: {e}", config.data_dir.display())),
        },
    };
    if std::env::args().nth(1).as_deref() == Some("token") {
        println!("{}", auth::issue_token(&secret, "local-user", TOKEN_TTL_SECS));
        return ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a Tokio runtime");
    match runtime.block_on(serve(config, secret, generated)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn serve(config: Config, secret: String, generated: bool) -> Result<(), String> {
    let addr = std::net::SocketAddr::new(config.host, config.port);
    let data_dir = config.data_dir.clone();
    let app = App::embedded(config, &secret).map_err(|e| format!("cannot open the embedded store: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("message-queue {} listening on http://{local}", env!("CARGO_PKG_VERSION"));
    println!("embedded store: {}", data_dir.join("mq.sqlite3").display());
    if generated {
        print_walkthrough(&secret, &data_dir, local);
    }
    tokio::spawn(shared::ops::run_dispatcher(app.service.clone()));
    let service = app.service.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RETENTION_EVERY).await;
            if let Err(e) = service.enforce_retention().await {
                tracing::warn!("retention pass failed: {e}");
            }
        }
    });
    axum::serve(listener, http::router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server failed: {e}"))
}

fn print_walkthrough(secret: &str, data_dir: &std::path::Path, addr: std::net::SocketAddr) {
    let token = auth::issue_token(secret, "local-user", TOKEN_TTL_SECS);
    println!("\nNo JWT_SECRET set: using the one kept in {}.", data_dir.join("jwt-secret").display());
    println!("A token valid for 30 days (or run `message-queue token`):\n\n  export TOKEN={token}\n");
    println!(
        "Try:\n  curl -s -X POST http://{addr}/message-queue/publish -H 'Content-Type: application/json' \
         -H \"Authorization: Bearer $TOKEN\" -d '{{\"queue\":\"delivery.events\",\"message\":{{\"hello\":\"world\"}}}}'\n"
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
}

fn init_tracing() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
}

fn fail(message: &str) -> ExitCode {
    eprintln!("message-queue: {message}");
    ExitCode::FAILURE
}
