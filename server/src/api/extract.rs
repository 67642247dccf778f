//! Extractors that answer their rejections with the documented JSON errors.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{header, request::Parts};
use chat_sync_protocol::{ErrorCode, User};

/// A JSON body; malformed JSON is `400 malformed_json`, wrong fields `422 invalid_field`,
/// oversized bodies `413 payload_too_large`.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct ApiJson<T>(pub(crate) T);

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
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
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
