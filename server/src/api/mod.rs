//! The protocol v1 HTTP API: routes, handlers and their extractors.

mod extract;
mod handlers;

use crate::AppState;
use axum::routing::{get, post};
use axum::Router;
use handlers::*;

/// The `/v1` routes, with JSON answers for unknown paths and methods.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/me", get(me))
        .route("/v1/sync", get(sync_feed))
        .route(
            "/v1/conversations",
            get(conversations_list).post(conversations_create),
        )
        .route("/v1/conversations/{id}/sync", get(conversation_sync))
        .route(
            "/v1/conversations/{id}/messages",
            get(messages_history).post(messages_create),
        )
        .route(
            "/v1/conversations/{id}/messages/{message_id}",
            axum::routing::patch(messages_edit).delete(messages_delete),
        )
        .route("/v1/conversations/{id}/read", post(read_marker_update))
        .route("/v1", axum::routing::any(not_found))
        .route("/v1/", axum::routing::any(not_found))
        .route("/v1/{*rest}", axum::routing::any(not_found))
        .method_not_allowed_fallback(method_not_allowed)
}
