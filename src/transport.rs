//! The fetch transport: performs the engine's [`HttpRequest`]s with the browser's `fetch` and
//! reports [`HttpOutcome`]s.
//!
//! It uses the global `fetch` and `setTimeout` (the latter through `gloo-timers`), never
//! `window`, so it works in a page, a dedicated Worker and a ServiceWorker alike.

use chat_sync_engine::{HttpOutcome, HttpRequest};
use chat_sync_protocol::{decode_response_from, Millis, RequestBody, ResponseBody, ResponseKind};
use futures_util::future::{select, Either};
use gloo_timers::future::TimeoutFuture;
use serde::Serialize;
use std::pin::pin;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AbortController, AbortSignal, Headers, RequestCache, RequestCredentials, RequestInit, Response,
};

#[cfg(all(test, target_arch = "wasm32"))]
mod tests;

/// Performs engine requests against one sync server with `fetch`.
///
/// Every request carries `Authorization: Bearer <token>` and no cookies (`credentials: omit`),
/// bypasses the HTTP cache (`cache: no-store`), and is aborted after the request's `timeout_ms`.
/// Response bodies arrive already decompressed (the browser handles `gzip` and `br`).
#[derive(Clone, Debug)]
pub struct FetchTransport {
    /// The server's base URL without a trailing slash, e.g. `https://chat.example/api`.
    base_url: String,
}

impl FetchTransport {
    /// A transport for the server at `base_url` (e.g. `http://127.0.0.1:8080`); request paths,
    /// which start with `/v1`, are appended to it.
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends `request` with the bearer `token` and reports what became of it:
    ///
    /// - [`HttpOutcome::Response`] when the server answered, with the status, `Retry-After` in
    ///   milliseconds (seconds or an HTTP date), the decoded body and the body's size;
    /// - [`HttpOutcome::Timeout`] when no complete answer arrived within `request.timeout_ms`
    ///   (the fetch is then aborted);
    /// - [`HttpOutcome::Network`] when the request could not be sent or the connection failed
    ///   before the whole body arrived (CORS refusals look the same to the page).
    ///
    /// The token is never logged and never part of an error message.
    pub async fn perform(&self, request: &HttpRequest, token: &str) -> HttpOutcome {
        let controller = match AbortController::new() {
            Ok(controller) => controller,
            Err(error) => return HttpOutcome::Network(js_message(&error)),
        };
        let signal = controller.signal();
        let exchange = pin!(self.exchange(request, token, &signal));
        let timer = pin!(TimeoutFuture::new(timeout_delay(request.timeout_ms)));
        match select(exchange, timer).await {
            Either::Left((outcome, _)) => outcome,
            Either::Right(((), _unfinished)) => {
                // The unfinished exchange is dropped: nobody waits for the rejection the abort
                // causes, so it is only ever reported as this timeout.
                controller.abort();
                log::debug!(
                    method = request.method.as_str(), path = request.path.as_str(),
                    timeout_ms = request.timeout_ms;
                    "request timed out; fetch aborted"
                );
                HttpOutcome::Timeout
            }
        }
    }

    /// The fetch and the reading of the whole body, without the timeout.
    async fn exchange(
        &self,
        request: &HttpRequest,
        token: &str,
        signal: &AbortSignal,
    ) -> HttpOutcome {
        let web_request = match self.build(request, token, signal) {
            Ok(web_request) => web_request,
            Err(message) => return HttpOutcome::Network(message),
        };
        let response = match fetch(&web_request).await {
            Ok(response) => response,
            Err(error) => {
                log::debug!(
                    method = request.method.as_str(), path = request.path.as_str();
                    "fetch failed: {error}"
                );
                return HttpOutcome::Network(error);
            }
        };
        let status = response.status();
        let headers = response.headers();
        let header = |name| headers.get(name).ok().flatten();
        let retry_after_ms = header("retry-after").and_then(|value| {
            parse_retry_after(&value, header("date").as_deref(), js_sys::Date::now())
        });
        let text = match text(&response).await {
            Ok(text) => text,
            Err(error) => {
                log::debug!(
                    method = request.method.as_str(), path = request.path.as_str(), status;
                    "reading the response body failed: {error}"
                );
                return HttpOutcome::Network(error);
            }
        };
        HttpOutcome::Response {
            status,
            retry_after_ms,
            body: decode(request.expects, status, &text),
            bytes: text.len() as u64,
        }
    }

    /// The `fetch` request: method, URL, headers, body and abort signal.
    fn build(
        &self,
        request: &HttpRequest,
        token: &str,
        signal: &AbortSignal,
    ) -> Result<web_sys::Request, String> {
        let headers = bearer_headers(token)?;
        let init = RequestInit::new();
        init.set_method(request.method.as_str());
        init.set_cache(RequestCache::NoStore);
        init.set_credentials(RequestCredentials::Omit);
        init.set_signal(Some(signal));
        if let Some(body) = &request.body {
            headers
                .set("Content-Type", "application/json")
                .map_err(|error| js_message(&error))?;
            init.set_body(&encode(body)?);
        }
        init.set_headers(&headers);
        let url = format!("{}{}", self.base_url, request.path);
        web_sys::Request::new_with_str_and_init(&url, &init).map_err(|error| js_message(&error))
    }
}

/// Headers with `Authorization: Bearer <token>`.
pub(crate) fn bearer_headers(token: &str) -> Result<Headers, String> {
    let headers = Headers::new().map_err(|error| js_message(&error))?;
    // The browser's message may quote the rejected value, so it is not passed on.
    headers
        .set("Authorization", &format!("Bearer {token}"))
        .map_err(|_| "the token is not a valid HTTP header value".to_owned())?;
    Ok(headers)
}

#[wasm_bindgen]
extern "C" {
    /// The global `fetch`: a page's, a dedicated Worker's or a ServiceWorker's.
    #[wasm_bindgen(js_name = fetch)]
    fn fetch_with_request(request: &web_sys::Request) -> js_sys::Promise;
}

/// Sends `request` with the global `fetch`; a failure (no connection, CORS, an abort) as the
/// exception's `toString()` (`TypeError: Failed to fetch`).
pub(crate) async fn fetch(request: &web_sys::Request) -> Result<Response, String> {
    match JsFuture::from(fetch_with_request(request)).await {
        Ok(response) => Ok(response.unchecked_into()),
        Err(error) => Err(js_to_string(&error)),
    }
}

/// The whole body of `response` as text; a failure (the connection broke off) as the
/// exception's `toString()`.
pub(crate) async fn text(response: &Response) -> Result<String, String> {
    let body = response.text().map_err(|error| js_to_string(&error))?;
    match JsFuture::from(body).await {
        Ok(text) => Ok(text.as_string().unwrap_or_default()),
        Err(error) => Err(js_to_string(&error)),
    }
}

/// An `Error`'s `toString()` (`name: message`, or the name alone without a message); any other
/// value as [`js_message`] writes it.
fn js_to_string(value: &JsValue) -> String {
    match value.dyn_ref::<js_sys::Error>() {
        Some(error) => error.to_string().into(),
        None => js_message(value),
    }
}

/// A request body as JSON text (`JSON.stringify`: the browser's JSON, not a second codec in the
/// wasm).
fn encode(body: &RequestBody) -> Result<JsValue, String> {
    let value = body
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|error| error.to_string())?;
    js_sys::JSON::stringify(&value)
        .map(JsValue::from)
        .map_err(|error| js_message(&error))
}

/// A response body parsed with `JSON.parse` and decoded from the JS value.
fn decode(kind: ResponseKind, status: u16, text: &str) -> ResponseBody {
    match js_sys::JSON::parse(text) {
        Ok(value) => {
            decode_response_from(kind, status, serde_wasm_bindgen::Deserializer::from(value))
        }
        Err(error) => ResponseBody::Invalid(format!("not JSON: {}", js_message(&error))),
    }
}

/// A `Retry-After` value in milliseconds: either delay-seconds, or an HTTP date (a date in the
/// past gives 0). `None` when it is neither.
///
/// A date is measured from the response's `Date` header, the server's clock, when it has one,
/// and only otherwise from `device_now_ms` (milliseconds since the epoch): a device clock an hour
/// slow would wait an hour longer.
fn parse_retry_after(value: &str, date: Option<&str>, device_now_ms: f64) -> Option<Millis> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // Absurdly many digits saturate rather than fail.
        let seconds: u64 = value.parse().unwrap_or(u64::MAX);
        return Some(Millis::try_from(seconds.saturating_mul(1000)).unwrap_or(Millis::MAX));
    }
    let at_ms = parse_http_date(value)?;
    let now_ms = date.and_then(parse_http_date).unwrap_or(device_now_ms);
    // `as` saturates; the difference of two finite dates is finite.
    Some((at_ms - now_ms).max(0.0).ceil() as Millis)
}

/// An HTTP date in milliseconds since the epoch, or `None`.
fn parse_http_date(value: &str) -> Option<f64> {
    let value = value.trim();
    // Every HTTP-date form starts with a day name ("Sun, 06 Nov 1994 08:49:37 GMT"); checking that
    // keeps `Date.parse`, which is lenient, from reading values like "-1" or "1.5" as dates.
    if !value.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let ms = js_sys::Date::parse(value);
    (!ms.is_nan()).then_some(ms)
}

/// The delay for `setTimeout`: negative means now, and it is capped at 2^31 - 1 ms (about 24.8
/// days), since browsers fire longer delays at once.
fn timeout_delay(timeout_ms: Millis) -> u32 {
    const MAX_DELAY_MS: Millis = i32::MAX as Millis;
    // In range after the clamp.
    timeout_ms.clamp(0, MAX_DELAY_MS) as u32
}

/// A readable message of a JavaScript exception: `name: message` for an `Error`.
fn js_message(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        format!(
            "{}: {}",
            String::from(error.name()),
            String::from(error.message())
        )
    } else if let Some(text) = value.as_string() {
        text
    } else {
        format!("{value:?}")
    }
}
