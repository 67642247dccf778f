//! Extractors that answer their rejections with the documented JSON errors.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use chat_sync_protocol::{ErrorCode, User};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON object body. Anything that is not a JSON object (bad syntax, wrong content type, an
/// array) is `400 malformed_json`; an object with missing or mistyped fields is
/// `422 invalid_field`; oversized bodies are `413 payload_too_large`.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // Syntax first, for the whole body, so a syntax error is never reported as a field error.
        let axum::Json(value) = axum::Json::<Value>::from_request(request, state).await?;
        if !value.is_object() {
            return Err(ApiError::new(
                ErrorCode::MalformedJson,
                "the body must be a JSON object",
            ));
        }
        serde_json::from_value(value)
            .map(ApiJson)
            .map_err(|error| ApiError::new(ErrorCode::InvalidField, error.to_string()))
    }
}

/// Query parameters; malformed ones are `400 invalid_query`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct ApiQuery<T>(pub(crate) T);

/// Path parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct ApiPath<T>(pub(crate) T);

/// The user the request's bearer token belongs to; `401 unauthorized` otherwise.
pub(crate) struct AuthUser(pub(crate) User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "missing `Authorization: Bearer <token>` header",
                )
            })?
            .to_owned();
        state
            .blocking(move |storage| storage.user_for_token(&token))
            .await?
            .map(AuthUser)
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "unknown token"))
    }
}
