//! Fault injection for tests, off unless a flag turns it on: added latency, and shares of requests
//! answered 503 (with `Retry-After`), 500 or 429, dropped connections, and lost acknowledgements
//! (the write commits, then the connection drops before the response).

use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chat_sync_protocol::ErrorCode;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which faults to inject; shares are probabilities between 0 and 1, drawn once per request.
#[derive(Clone, Debug, clap::Args)]
pub struct FaultConfig {
    /// Delay every API request by this many milliseconds.
    #[arg(long = "fault-latency-ms", default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of API requests answered `503 unavailable` with `Retry-After`.
    #[arg(long = "fault-503", default_value_t = 0.0, value_parser = share)]
    pub unavailable: f64,
    /// Share of API requests answered `500 internal`.
    #[arg(long = "fault-500", default_value_t = 0.0, value_parser = share)]
    pub internal: f64,
    /// Share of API requests answered `429 rate_limited` with `Retry-After`.
    #[arg(long = "fault-429", default_value_t = 0.0, value_parser = share)]
    pub rate_limited: f64,
    /// Share of API requests whose connection drops before the server handles them.
    #[arg(long = "fault-drop", default_value_t = 0.0, value_parser = share)]
    pub dropped: f64,
    /// Share of writes (POST, PATCH, DELETE) that commit, then lose their response.
    #[arg(long = "fault-lost-ack", default_value_t = 0.0, value_parser = share)]
    pub lost_ack: f64,
    /// The `Retry-After` seconds sent with injected 503 and 429 answers.
    #[arg(long = "fault-retry-after", default_value_t = 1)]
    pub retry_after_secs: u64,
    /// Seed of the fault dice, so a run can be repeated.
    #[arg(long = "fault-seed", default_value_t = 0)]
    pub seed: u64,
}

impl Default for FaultConfig {
    /// No faults; `Retry-After: 1` once some are switched on (the command line's defaults).
    fn default() -> Self {
        Self {
            latency_ms: 0,
            unavailable: 0.0,
            internal: 0.0,
            rate_limited: 0.0,
            dropped: 0.0,
            lost_ack: 0.0,
            retry_after_secs: 1,
            seed: 0,
        }
    }
}

impl FaultConfig {
    /// Whether any fault is switched on.
    pub fn is_active(&self) -> bool {
        self.latency_ms > 0
            || self.unavailable + self.internal + self.rate_limited + self.dropped + self.lost_ack
                > 0.0
    }
}

fn share(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not between 0 and 1"))
    }
}

/// The fault dice: the configuration and a seeded random generator.
pub(crate) struct Faults {
    config: FaultConfig,
    rng: Mutex<SmallRng>,
}

impl Faults {
    pub(crate) fn new(config: FaultConfig) -> Arc<Self> {
        let rng = Mutex::new(SmallRng::seed_from_u64(config.seed));
        Arc::new(Self { config, rng })
    }

    fn roll(&self) -> f64 {
        self.rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .random()
    }
}

/// Middleware: delays, fails or cuts requests as configured; passes them through otherwise.
pub(crate) async fn inject(
    State(faults): State<Arc<Faults>>,
    request: Request,
    next: Next,
) -> Response {
    let config = &faults.config;
    if config.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(config.latency_ms)).await;
    }
    let mut threshold = 0.0;
    let roll = faults.roll();
    let mut hit = |share: f64| {
        threshold += share;
        roll < threshold
    };
    if hit(config.unavailable) {
        tracing::debug!("fault: 503");
        return ApiError::new(ErrorCode::Unavailable, "injected fault: unavailable")
            .retry_after(config.retry_after_secs)
            .into_response();
    }
    if hit(config.internal) {
        tracing::debug!("fault: 500");
        return ApiError::new(ErrorCode::Internal, "injected fault: internal").into_response();
    }
    if hit(config.rate_limited) {
        tracing::debug!("fault: 429");
        return ApiError::new(ErrorCode::RateLimited, "injected fault: rate limited")
            .retry_after(config.retry_after_secs)
            .into_response();
    }
    if hit(config.dropped) {
        tracing::debug!("fault: connection dropped before handling");
        return dropped_connection();
    }
    let is_write = matches!(
        *request.method(),
        Method::POST | Method::PATCH | Method::DELETE
    );
    let lose_ack = is_write && faults.roll() < config.lost_ack;
    let response = next.run(request).await;
    if lose_ack {
        tracing::debug!(status = %response.status(), "fault: acknowledgement lost after handling");
        return dropped_connection();
    }
    response
}

/// A response whose body fails at once: the server aborts the connection, so the client sees a
/// network error and never learns the outcome.
fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected fault: connection dropped",
        ))
    });
    Response::new(Body::from_stream(failing))
}
