//! `chat-sync-server`: the reference sync server's command line.

use axum::http::HeaderValue;
use chat_sync_server::{app, seed, AppState, Config, FaultConfig, SqliteStorage};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// The chat-sync reference sync server (protocol v1, docs/protocol.md).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// SQLite database file, created when missing; `:memory:` keeps everything in memory.
    #[arg(long, default_value = "chat.sqlite")]
    db: String,
    /// Directory of the demo PWA, served at `/`.
    #[arg(long, default_value = "www")]
    www: PathBuf,
    /// Create the demo users, conversations and messages (what is missing of them: later runs keep
    /// them, and complete a seed that was cut short).
    #[arg(long)]
    seed_demo: bool,
    /// How many messages `--seed-demo` writes (tests use tens of thousands for a large backlog).
    #[arg(long, value_name = "N", default_value_t = seed::DEMO_MESSAGES, requires = "seed_demo")]
    seed_demo_messages: usize,
    /// Allow API calls from this origin (repeatable), e.g. http://127.0.0.1:9000. `*` allows any
    /// origin: development and tests only (no credentials are allowed with it; the API uses
    /// bearer tokens, not cookies).
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<HeaderValue>,
    /// The Content-Security-Policy sent with the demo's files; an empty string sends none.
    #[arg(long, value_name = "POLICY", default_value = chat_sync_server::DEMO_CONTENT_SECURITY_POLICY)]
    csp: String,
    #[command(flatten)]
    faults: FaultConfig,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("chat-sync-server: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let storage = SqliteStorage::open(&args.db).map_err(|error| error.to_string())?;
    let www_dir = if args.www.is_dir() {
        Some(args.www.clone())
    } else {
        tracing::warn!(www = %args.www.display(), "no such directory; serving the API only");
        None
    };
    let config = Config {
        www_dir,
        cors_origins: args.cors_origins,
        faults: args.faults,
        content_security_policy: match args.csp.as_str() {
            "" => None,
            policy => Some(
                HeaderValue::from_str(policy).map_err(|_| format!("invalid --csp: {policy:?}"))?,
            ),
        },
    };
    let state = AppState::new(storage, config);
    if args.seed_demo {
        match seed::seed_demo_with_messages(state.storage(), state.now(), args.seed_demo_messages) {
            Ok(Some(report)) => tracing::info!(?report, "seeded demo data"),
            Ok(None) => tracing::info!("demo data already present"),
            Err(error) => return Err(format!("seeding demo data failed: {error}")),
        }
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
    let address = listener
        .local_addr()
        .map_err(|error| format!("cannot read the listening address: {error}"))?;
    tracing::info!(db = %args.db, "chat-sync-server listening on http://{address}");
    // Tests and scripts read this line to learn the port.
    println!("listening on http://{address}");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|error| format!("server failed: {error}"))?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
