//! The chat-sync reference server: protocol v1 (`docs/protocol.md`) over axum, with embedded
//! SQLite storage by default.
//!
//! It is the server the demo runs against and the peer the client's tests talk to. It is not a
//! production chat backend (no sign-up, no push), but it implements every rule of the protocol
//! that a client depends on: idempotent sends, a compacted change feed whose cursors never skip
//! or repeat, last-write-wins by server stamps, and membership isolation.
//!
//! ```no_run
//! use chat_sync_server::{app, AppState, Config, SqliteStorage};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let storage = SqliteStorage::open(":memory:")?;
//! let router = app(AppState::new(storage, Config::default()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, router).await?;
//! # Ok(())
//! # }
//! ```

mod api;
pub mod clock;
mod cursor;
mod error;
pub mod faults;
pub mod seed;
pub mod storage;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::ApiError;
pub use faults::FaultConfig;
pub use storage::{SqliteStorage, Storage, StorageError};

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method};
use axum::routing::get;
use axum::Router;
use chat_sync_protocol::limits::MAX_BODY_BYTES;
use chat_sync_protocol::Millis;
use std::path::PathBuf;
use std::sync::Arc;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// How the server is set up, besides its storage.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Directory served at `/` (the demo PWA); `None` serves no files.
    pub www_dir: Option<PathBuf>,
    /// Origins allowed to call the API from another origin (CORS); empty allows none, and `*`
    /// among them allows any origin (development and tests only; credentials are never allowed,
    /// the API authenticates with bearer tokens, not cookies).
    pub cors_origins: Vec<HeaderValue>,
    /// Faults to inject into API requests (tests only).
    pub faults: FaultConfig,
    /// The `Content-Security-Policy` sent with the files of `www_dir`; `None` sends none.
    pub content_security_policy: Option<HeaderValue>,
}

/// The demo's `Content-Security-Policy`: its own scripts, styles and API only, WebAssembly
/// allowed, no inline script, no plugins, no framing.
pub const DEMO_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; \
    script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What every handler shares: storage, clock and configuration.
#[derive(Clone)]
pub struct AppState {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    config: Arc<Config>,
}

impl AppState {
    /// State on `storage` with the system clock.
    pub fn new(storage: impl Storage, config: Config) -> Self {
        Self {
            storage: Arc::new(storage),
            clock: Arc::new(SystemClock),
            config: Arc::new(config),
        }
    }

    /// Replaces the clock (tests and simulations set or skew it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The storage, for seeding and inspection.
    pub fn storage(&self) -> &dyn Storage {
        &*self.storage
    }

    /// The clock's reading.
    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Runs a storage call on the blocking pool.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Storage) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let storage = Arc::clone(&self.storage);
        tokio::task::spawn_blocking(move || call(&*storage))
            .await
            .map_err(|error| ApiError::internal("storage task", &error))?
            .map_err(ApiError::from)
    }
}

/// The whole server: the `/v1` API, `/healthz`, and the demo files when configured.
pub fn app(state: AppState) -> Router {
    let config = Arc::clone(&state.config);
    let mut api = api::routes();
    if config.faults.is_active() {
        tracing::warn!(faults = ?config.faults, "fault injection is on");
        api = api.route_layer(axum::middleware::from_fn_with_state(
            faults::Faults::new(config.faults.clone()),
            faults::inject,
        ));
    }
    let mut router = api
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    if let Some(dir) = &config.www_dir {
        router = router.fallback_service(static_files(dir, &config));
    }
    router = router
        .layer(RequestDecompressionLayer::new())
        .layer(axum::middleware::map_response(json_unsupported_encoding));
    // Outside every layer that answers on its own (415, 413, faults), so that each answer carries
    // the CORS headers: a browser hides an answer without them, as if the network failed.
    if let Some(cors) = cors(&config) {
        router = router.layer(cors);
    }
    router
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
}

/// The CORS layer for the configured origins; `None` when no other origin is allowed.
fn cors(config: &Config) -> Option<CorsLayer> {
    if config.cors_origins.is_empty() {
        return None;
    }
    let allow_origin = if config.cors_origins.iter().any(|origin| origin == "*") {
        tracing::warn!("CORS allows any origin (--cors-origin '*'): development and tests only");
        AllowOrigin::any()
    } else {
        AllowOrigin::list(config.cors_origins.clone())
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::CONTENT_ENCODING,
            ])
            // `Date` too: a `Retry-After` date is measured from the server's clock.
            .expose_headers([header::RETRY_AFTER, header::DATE]),
    )
}

/// The files of `dir`, with the configured CSP and headers that keep browsers from sniffing
/// content types or leaking the page's address. A file with a precompressed copy beside it
/// (`x.br`, `x.gz`, as `make pkg` writes for the package) goes out as that copy when the browser
/// accepts its encoding; the others are compressed as they are sent.
fn static_files(dir: &std::path::Path, config: &Config) -> Router {
    let mut files = Router::new()
        .fallback_service(ServeDir::new(dir).precompressed_br().precompressed_gzip())
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        // The answer depends on `Accept-Encoding` (a precompressed copy or not), so caches must
        // key on it; the compression layer says so only for what it compresses itself.
        .layer(SetResponseHeaderLayer::overriding(
            header::VARY,
            HeaderValue::from_static("accept-encoding"),
        ))
        // Checked with the server on every use (a cheap 304 when unchanged): a browser's guess
        // at how long a file stays fresh could mix an old file with a new one after an update
        // (the wasm and its JS glue must match).
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ));
    if let Some(policy) = &config.content_security_policy {
        files = files.layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            policy.clone(),
        ));
    }
    files
}

/// The decompression layer answers an unknown `Content-Encoding` with an empty 415; give it the
/// documented JSON error body.
async fn json_unsupported_encoding(response: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    if response.status() != axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return response;
    }
    let mut json = ApiError::new(
        chat_sync_protocol::ErrorCode::UnsupportedEncoding,
        "request bodies may only be gzip-compressed (Content-Encoding: gzip)",
    )
    .into_response();
    if let Some(accepted) = response.headers().get(header::ACCEPT_ENCODING) {
        json.headers_mut()
            .insert(header::ACCEPT_ENCODING, accepted.clone());
    }
    json
}
