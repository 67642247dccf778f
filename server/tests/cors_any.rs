//! `--cors-origin '*'` (development and tests only): any origin may call the API, without
//! credentials; with no CORS configuration, no other origin may.

mod common;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use chat_sync_server::Config;
use common::{TestApp, ALICE};
use tower::ServiceExt;

/// An origin nobody configured.
const ARBITRARY_ORIGIN: &str = "http://some-dev-box.example:4321";

fn any_origin_app() -> TestApp {
    TestApp::with_config(Config {
        cors_origins: vec![HeaderValue::from_static("*")],
        ..Default::default()
    })
}

/// The browser's preflight before a POST with a bearer token and a JSON body.
fn preflight(path: &str, origin: &str) -> Request<Body> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri(path)
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type",
        )
        .body(Body::empty())
        .expect("valid request")
}

/// Status and headers of the answer to `request`.
async fn call(app: &TestApp, request: Request<Body>) -> (StatusCode, HeaderMap) {
    let response = app
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("router is infallible");
    (response.status(), response.headers().clone())
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers
        .get(name)
        .map(|value| value.to_str().expect("ASCII header"))
}

#[tokio::test]
async fn any_origin_preflight_is_allowed_with_star() {
    let app = any_origin_app();
    let path = format!("/v1/conversations/{}/messages", app.ab);
    let (status, headers) = call(&app, preflight(&path, ARBITRARY_ORIGIN)).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(
        header_str(&headers, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some("*")
    );
    let methods = header_str(&headers, header::ACCESS_CONTROL_ALLOW_METHODS).unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    let allowed_headers = header_str(&headers, header::ACCESS_CONTROL_ALLOW_HEADERS)
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization") && allowed_headers.contains("content-type"),
        "{allowed_headers}"
    );
    // Bearer tokens, no cookies: a wildcard never comes with credentials.
    assert_eq!(
        header_str(&headers, header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        None
    );
}

#[tokio::test]
async fn any_origin_answers_expose_retry_after_and_date() {
    let app = any_origin_app();
    let request = Request::builder()
        .uri("/v1/sync")
        .header(header::ORIGIN, ARBITRARY_ORIGIN)
        .header(header::AUTHORIZATION, format!("Bearer {ALICE}"))
        .body(Body::empty())
        .expect("valid request");
    let (status, headers) = call(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header_str(&headers, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some("*")
    );
    let exposed = header_str(&headers, header::ACCESS_CONTROL_EXPOSE_HEADERS)
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("retry-after"), "{exposed}");
    assert!(exposed.contains("date"), "{exposed}");
}

#[tokio::test]
async fn star_among_listed_origins_still_allows_any() {
    let app = TestApp::with_config(Config {
        cors_origins: vec![
            HeaderValue::from_static("http://127.0.0.1:9000"),
            HeaderValue::from_static("*"),
        ],
        ..Default::default()
    });
    let (_, headers) = call(&app, preflight("/v1/sync", ARBITRARY_ORIGIN)).await;
    assert_eq!(
        header_str(&headers, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some("*")
    );
}

#[tokio::test]
async fn without_cors_configuration_no_origin_is_allowed() {
    let app = TestApp::new();
    let path = format!("/v1/conversations/{}/messages", app.ab);
    let (_, headers) = call(&app, preflight(&path, ARBITRARY_ORIGIN)).await;
    assert_eq!(
        header_str(&headers, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        None
    );
    assert_eq!(
        header_str(&headers, header::ACCESS_CONTROL_ALLOW_METHODS),
        None
    );
}
