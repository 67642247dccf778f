//! `BackgroundSyncManager.create(options)`: reading and checking the options object.

use super::errors::{js_error, Code};
use chat_sync_engine::protocol::{Millis, UserId};
use chat_sync_engine::Config;
use js_sys::{Function, Reflect};
use serde::Deserialize;
use wasm_bindgen::{JsCast, JsValue};

/// The options, as the TypeScript `SyncOptions` documents them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    server_url: String,
    token: Option<String>,
    user_id: Option<String>,
    periodic_sync_ms: Option<f64>,
    maintenance_interval_ms: Option<f64>,
    optimistic_ttl_ms: Option<f64>,
    page_size: Option<u32>,
    max_concurrent_requests: Option<u32>,
    retention_per_conversation: Option<u32>,
    log_level: Option<String>,
    request_persistent_storage: Option<bool>,
}

/// Checked options.
pub(crate) struct Options {
    /// The server's base URL, without a trailing slash.
    pub(crate) server_url: String,
    /// The bearer token, when given directly.
    pub(crate) token: Option<String>,
    /// `getToken()`, called for a token at start and after a 401.
    pub(crate) get_token: Option<Function>,
    /// The signed-in user, when the app knows it (saves a request at start).
    pub(crate) user_id: Option<UserId>,
    /// Console log level.
    pub(crate) log_level: String,
    /// Ask for persistent storage at start (pages only).
    pub(crate) request_persistent_storage: bool,
    periodic_sync_ms: Option<Millis>,
    maintenance_interval_ms: Option<Millis>,
    optimistic_ttl_ms: Option<Millis>,
    page_size: Option<u32>,
    max_concurrent_requests: Option<u32>,
    retention_per_conversation: Option<u32>,
}

fn invalid(message: impl Into<String>) -> JsValue {
    js_error(Code::InvalidInput, &message.into())
}

impl Options {
    /// Reads `options`; anything malformed is an `invalidInput` error naming the option.
    pub(crate) fn parse(options: &JsValue) -> Result<Self, JsValue> {
        if !options.is_object() {
            return Err(invalid("options must be an object with at least serverUrl"));
        }
        let get_token =
            match Reflect::get(options, &"getToken".into()) {
                Ok(value) if value.is_undefined() || value.is_null() => None,
                Ok(value) => Some(value.dyn_into::<Function>().map_err(|_| {
                    invalid("getToken must be a function returning a Promise<string>")
                })?),
                Err(_) => None,
            };
        let plain = js_sys::Object::assign(&js_sys::Object::new(), options.unchecked_ref());
        let _ = Reflect::delete_property(&plain, &"getToken".into());
        let raw: Raw = serde_wasm_bindgen::from_value(plain.into())
            .map_err(|error| invalid(format!("invalid options: {error}")))?;
        let server_url = raw.server_url.trim_end_matches('/').to_owned();
        if !(server_url.starts_with("http://") || server_url.starts_with("https://")) {
            return Err(invalid("serverUrl must be an http(s) URL"));
        }
        if raw.token.is_none() && get_token.is_none() {
            return Err(invalid("give token or getToken"));
        }
        if raw.token.as_deref() == Some("") || raw.user_id.as_deref() == Some("") {
            return Err(invalid("token and userId must not be empty"));
        }
        // At least a second (`300` meant as seconds would poll the server); at most what a
        // timer can wait (about 24.8 days), or 10 years for a lifetime.
        let within =
            |name: &str, value: Option<f64>, max: f64| -> Result<Option<Millis>, JsValue> {
                match value {
                    Some(ms) if !(1_000.0..=max).contains(&ms) => Err(invalid(format!(
                        "{name} must be a number of milliseconds from 1000 to {}",
                        max as u64
                    ))),
                    other => Ok(other.map(|ms| ms as Millis)),
                }
            };
        const TIMER_MAX_MS: f64 = 2_147_483_647.0;
        const TEN_YEARS_MS: f64 = 315_360_000_000.0;
        let log_level = raw.log_level.unwrap_or_else(|| "warn".into());
        if !["debug", "info", "warn", "error", "off"].contains(&log_level.as_str()) {
            return Err(invalid("logLevel must be debug, info, warn, error or off"));
        }
        Ok(Self {
            server_url,
            token: raw.token,
            get_token,
            user_id: raw.user_id.map(UserId::new),
            log_level,
            request_persistent_storage: raw.request_persistent_storage.unwrap_or(false),
            periodic_sync_ms: within("periodicSyncMs", raw.periodic_sync_ms, TIMER_MAX_MS)?,
            maintenance_interval_ms: within(
                "maintenanceIntervalMs",
                raw.maintenance_interval_ms,
                TIMER_MAX_MS,
            )?,
            optimistic_ttl_ms: within("optimisticTtlMs", raw.optimistic_ttl_ms, TEN_YEARS_MS)?,
            page_size: raw.page_size.filter(|size| *size > 0),
            max_concurrent_requests: raw.max_concurrent_requests.filter(|n| *n > 0),
            retention_per_conversation: raw.retention_per_conversation,
        })
    }

    /// The engine configuration for `user`.
    pub(crate) fn engine_config(&self, user: UserId, seed: u64) -> Config {
        let mut config = Config::new(user, seed);
        if let Some(ms) = self.periodic_sync_ms {
            config.periodic_sync_ms = ms;
        }
        if let Some(ms) = self.maintenance_interval_ms {
            config.maintenance_interval_ms = ms;
        }
        if let Some(ms) = self.optimistic_ttl_ms {
            config.optimistic_ttl_ms = ms;
        }
        if let Some(size) = self.page_size {
            config.page_size = size;
        }
        if let Some(n) = self.max_concurrent_requests {
            config.max_concurrent_requests = n as usize;
        }
        if let Some(keep) = self.retention_per_conversation {
            config.retention_per_conversation = Some(keep as usize);
        }
        config
    }
}
