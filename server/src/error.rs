//! `ApiError`: every error the API answers, turned into the documented JSON body.

use crate::storage::StorageError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat_sync_protocol::{ErrorBody, ErrorCode, ErrorDetail, ValidationError};

/// An error answered as `{ "error": { "code", "message" } }` with the code's HTTP status.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with a code and a message for people.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// Adds a `Retry-After` header (for 429 and 503).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// A failure on the server: logged here in full, answered without details.
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, context, "internal error");
        Self::new(ErrorCode::Internal, "internal server error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        let code = match &error {
            StorageError::ConversationNotFound => ErrorCode::ConversationNotFound,
            StorageError::MessageNotFound => ErrorCode::MessageNotFound,
            StorageError::Forbidden => ErrorCode::Forbidden,
            StorageError::ClientMessageIdConflict(_) => ErrorCode::ClientMessageIdConflict,
            StorageError::MessageDeleted => ErrorCode::MessageDeleted,
            StorageError::CursorAhead => ErrorCode::InvalidCursor,
            StorageError::UnknownUser(_) | StorageError::UserExists(_) => ErrorCode::InvalidField,
            StorageError::Database(_) => return ApiError::internal("storage", &error),
        };
        ApiError::new(code, error.to_string())
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        ApiError::new(error.code(), error.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match &rejection {
            JsonRejection::JsonDataError(_) => ErrorCode::InvalidField,
            JsonRejection::BytesRejection(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                return ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "request body is over {} bytes",
                        chat_sync_protocol::limits::MAX_BODY_BYTES
                    ),
                );
            }
            _ => ErrorCode::MalformedJson,
        };
        ApiError::new(code, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::new(ErrorCode::InvalidQuery, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::new(ErrorCode::NotFound, rejection.body_text())
    }
}
