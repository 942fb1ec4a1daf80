//! The local server: every route of both API families in one process, on the
//! embedded SQLite file. `message-queue token` prints a bearer token instead.

mod exposition;
mod lingering;
#[cfg(feature = "profiling")]
mod profiling;
mod serve;

use std::{path::Path, process::ExitCode, time::Duration};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use shared::{
    app::App,
    auth,
    config::{Config, LogFormat, LogPlace, VARIABLES},
    domain::parse_duration_ns,
    http,
};
use tracing_subscriber::filter::{LevelFilter, Targets};

/// glibc's allocator spends a fifth of the publish path's time in malloc and free; mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long the token printed at start-up stays valid: 30 days.
const TOKEN_TTL_SECS: u64 = 30 * 86_400;
/// How often retention is applied.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// An HTTP message-queue service: both API families, on an embedded SQLite file.
#[derive(Debug, Parser)]
#[command(name = "message-queue", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default): every endpoint, on the embedded store in MESSAGE_QUEUE_DATA_DIR.
    Serve,
    /// Print a bearer token this configuration's server accepts (JWT_SECRET, JWT_ISSUER, JWT_AUDIENCE).
    Token {
        /// The token's subject (`sub`), the principal it speaks for.
        #[arg(long, default_value = "local-user")]
        subject: String,
        /// How long it stays valid, as a Go duration (`720h`, `90m`).
        #[arg(long, default_value = "720h")]
        ttl: String,
    },
}

fn main() -> ExitCode {
    let help = VARIABLES.iter().map(|(name, default, meaning)| format!("  {name:<34} {meaning} [{default}]\n"));
    let command = Cli::command().after_help(format!("Environment variables:\n{}", help.collect::<String>()));
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    init_tracing(config.log_format);
    if let Err(e) = usable_dir(&config.data_dir) {
        return fail(&format!("cannot use the data directory {}: {e}", config.data_dir.display()));
    }
    let (secret, generated) = match &config.jwt.secret {
        Some(s) => (s.clone(), false),
        None => match auth::local_secret(&config.data_dir) {
            Ok(s) => (s, true),
            Err(e) => return fail(&format!("cannot keep a JWT secret in {}: {e}", config.data_dir.display())),
        },
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Token { subject, ttl } => {
            let ttl_secs = match parse_duration_ns(&ttl) {
                Ok(ns) if ns >= 1_000_000_000 => ns / 1_000_000_000,
                Ok(_) => return fail("--ttl must be at least 1s"),
                Err(e) => return fail(&format!("--ttl {ttl:?}: {e}")),
            };
            println!("{}", auth::issue_token(&secret, &config.jwt, &subject, ttl_secs));
            ExitCode::SUCCESS
        }
        Command::Serve => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a Tokio runtime");
            let result = runtime.block_on(run(config, secret, generated));
            runtime.shutdown_timeout(Duration::from_secs(1));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
    }
}

/// Creates the data directory if needed and checks that files can be made in it.
fn usable_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".write-check-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(probe)
}

async fn run(config: Config, secret: String, generated: bool) -> Result<(), String> {
    let addr = std::net::SocketAddr::new(config.host, config.port);
    let (data_dir, limits, store) = (config.data_dir.clone(), config.limits, config.store.to_string());
    let (metrics_addr, pprof_addr) = (config.metrics_addr, config.pprof_addr);
    let log_place = match (&config.kafka, &config.store, config.log_place) {
        (Some(kafka), _, _) => Some(format!("Kafka at {}", kafka.brokers)),
        (None, shared::config::StoreUrl::Sqlite(path), LogPlace::Files) => {
            Some(format!("segment files in {}", LogPlace::files_beside(path).display()))
        }
        _ => None,
    };
    let app = App::from_config(config, &secret).await.map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    if let Some(metrics_addr) = metrics_addr {
        let handle = exposition::install()?;
        let metrics = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .map_err(|e| format!("cannot listen on {metrics_addr} (METRICS_ADDR): {e}"))?;
        let local = metrics.local_addr().map_err(|e| e.to_string())?;
        println!("metrics on http://{local}/metrics");
        tokio::spawn(exposition::serve(metrics, app.service.clone(), handle));
    }
    if let Some(pprof_addr) = pprof_addr {
        serve_profiles(pprof_addr).await?;
    }
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("message-queue {} listening on http://{local}", env!("CARGO_PKG_VERSION"));
    println!("store: {store}");
    if let Some(log) = log_place {
        println!("message log: {log}");
    }
    if generated {
        print_walkthrough(&secret, &app, &data_dir, local);
    }
    tokio::spawn(shared::ops::run_dispatcher(app.service.clone()));
    tokio::spawn(shared::ops::run_signals(app.service.clone()));
    tokio::spawn(app.service.clone().run_statistics());
    let flushing = app.service.clone();
    let service = app.service.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RETENTION_EVERY).await;
            if let Err(e) = service.enforce_retention().await {
                tracing::warn!("retention pass failed: {e}");
            }
        }
    });
    let service = app.service.clone();
    let stop = async move {
        let signal = shutdown_signal().await;
        tracing::info!("{signal}: stopping; waiting long polls answer now, requests in flight finish");
        service.stop();
    };
    let stopped = serve::serve(listener, http::router(app), limits, stop).await;
    if let Err(e) = flushing.flush_statistics().await {
        tracing::warn!("the last statistics were not written: {e}");
    }
    if stopped.all_finished {
        tracing::info!("stopped; {} open connections closed", stopped.open);
    } else {
        tracing::warn!("stopped; some of {} open connections had not finished", stopped.open);
    }
    Ok(())
}

/// Serves CPU profiles on `addr` (see `profiling`).
#[cfg(feature = "profiling")]
async fn serve_profiles(addr: std::net::SocketAddr) -> Result<(), String> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr} (PPROF_ADDR): {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("profiles on http://{local}/debug/pprof/profile");
    tokio::spawn(profiling::serve(listener));
    Ok(())
}

#[cfg(not(feature = "profiling"))]
async fn serve_profiles(_: std::net::SocketAddr) -> Result<(), String> {
    tracing::info!("built without the profiling feature: PPROF_ADDR serves nothing");
    Ok(())
}

fn print_walkthrough(secret: &str, app: &App, data_dir: &Path, addr: std::net::SocketAddr) {
    let token = auth::issue_token(secret, &app.service.config.jwt, "local-user", TOKEN_TTL_SECS);
    println!("\nNo JWT_SECRET set: using the one kept in {}.", data_dir.join("jwt-secret").display());
    println!("A token valid for 30 days (or run `message-queue token`):\n\n  export TOKEN={token}\n");
    println!("Dashboard: http://{addr}/dashboard#token={token}\n");
    println!(
        "Try:\n  curl -s -X POST http://{addr}/message-queue/publish -H 'Content-Type: application/json' \
         -H \"Authorization: Bearer $TOKEN\" -d '{{\"queue\":\"delivery.events\",\"message\":{{\"hello\":\"world\"}}}}'\n"
    );
}

/// Waits for Ctrl-C or SIGTERM and names it.
async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => "interrupted", () = terminate => "SIGTERM" }
}

fn init_tracing(format: LogFormat) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    use tracing_subscriber::prelude::*;
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(layer).init(),
        // The spans' fields flattened into each line: `request_id` on every line of a request.
        LogFormat::Json => registry.with(layer.json().flatten_event(true).with_span_list(true)).init(),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("message-queue: {message}");
    ExitCode::FAILURE
}
