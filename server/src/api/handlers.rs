//! The protocol v1 handlers, one per endpoint (`docs/protocol.md`).

use super::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::cursor;
use crate::error::ApiError;
use crate::storage::{FeedScope, HistoryStart};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_sync_protocol::limits::{
    FEED_PAGE_DEFAULT, FEED_PAGE_MAX, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX,
};
use chat_sync_protocol::{
    ConversationId, ConversationResponse, ConversationsResponse, CreateConversationRequest,
    EditMessageRequest, ErrorCode, FeedPage, HistoryPage, MarkReadRequest, MeResponse, MessageId,
    MessageResponse, ReadMarkerResponse, SendMessageRequest,
};
use serde::Deserialize;
use std::num::IntErrorKind;

/// Query of the two feed endpoints.
#[derive(Deserialize)]
pub(crate) struct FeedQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

/// Query of the history endpoint.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HistoryQuery {
    before: Option<String>,
    before_message: Option<MessageId>,
    limit: Option<String>,
}

/// `GET /v1/me`.
pub(crate) async fn me(AuthUser(user): AuthUser) -> Json<MeResponse> {
    Json(MeResponse { user })
}

/// `GET /v1/sync`.
pub(crate) async fn sync_feed(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<FeedQuery>,
) -> Result<Json<FeedPage>, ApiError> {
    feed(state, auth, FeedScope::AllConversations, query).await
}

/// `GET /v1/conversations/{id}/sync`.
pub(crate) async fn conversation_sync(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<ConversationId>,
    ApiQuery(query): ApiQuery<FeedQuery>,
) -> Result<Json<FeedPage>, ApiError> {
    feed(state, auth, FeedScope::Conversation(id), query).await
}

async fn feed(
    state: AppState,
    AuthUser(user): AuthUser,
    scope: FeedScope,
    query: FeedQuery,
) -> Result<Json<FeedPage>, ApiError> {
    let limit = page_limit(query.limit, FEED_PAGE_DEFAULT, FEED_PAGE_MAX)?;
    let after = query
        .cursor
        .as_deref()
        .map(|cursor| cursor::decode_feed(state.storage().database_id(), cursor))
        .transpose()?
        .unwrap_or(0);
    let read = state
        .blocking(move |storage| storage.feed(&user.id, &scope, after, limit))
        .await?;
    Ok(Json(FeedPage {
        changes: read.changes,
        next_cursor: cursor::encode_feed(state.storage().database_id(), read.next),
        has_more: read.has_more,
    }))
}

/// `GET /v1/conversations/{id}/messages`.
pub(crate) async fn messages_history(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<ConversationId>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    let limit = page_limit(query.limit, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX)?;
    let database = state.storage().database_id();
    let start = match (query.before, query.before_message) {
        (None, None) => HistoryStart::Newest,
        (Some(before), None) => HistoryStart::Before(cursor::decode_history(database, &before)?),
        (None, Some(message)) => HistoryStart::BeforeMessage(message),
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                "give `before` or `beforeMessage`, not both",
            ))
        }
    };
    let read = state
        .blocking(move |storage| storage.history(&user.id, &id, &start, limit))
        .await?;
    Ok(Json(HistoryPage {
        has_more: read.next_before.is_some(),
        next_before: (read.next_before).map(|key| cursor::encode_history(database, key)),
        messages: read.messages,
    }))
}

/// `POST /v1/conversations/{id}/messages`: 201 when created, 200 for an idempotent replay.
pub(crate) async fn messages_create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<ConversationId>,
    ApiJson(request): ApiJson<SendMessageRequest>,
) -> Result<(StatusCode, Json<MessageResponse>), ApiError> {
    request.validate()?;
    let now = state.now();
    let outcome = state
        .blocking(move |storage| {
            storage.send_message(
                &user.id,
                &id,
                &request.client_message_id,
                &request.body,
                now,
            )
        })
        .await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(MessageResponse {
            message: outcome.message,
        }),
    ))
}

/// `PATCH /v1/conversations/{id}/messages/{messageId}`.
pub(crate) async fn messages_edit(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath((id, message_id)): ApiPath<(ConversationId, MessageId)>,
    ApiJson(request): ApiJson<EditMessageRequest>,
) -> Result<Json<MessageResponse>, ApiError> {
    request.validate()?;
    let now = state.now();
    let message = state
        .blocking(move |storage| {
            storage.edit_message(&user.id, &id, &message_id, &request.body, now)
        })
        .await?;
    Ok(Json(MessageResponse { message }))
}

/// `DELETE /v1/conversations/{id}/messages/{messageId}`.
pub(crate) async fn messages_delete(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath((id, message_id)): ApiPath<(ConversationId, MessageId)>,
) -> Result<Json<MessageResponse>, ApiError> {
    let now = state.now();
    let message = state
        .blocking(move |storage| storage.delete_message(&user.id, &id, &message_id, now))
        .await?;
    Ok(Json(MessageResponse { message }))
}

/// `POST /v1/conversations/{id}/read`.
pub(crate) async fn read_marker_update(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<ConversationId>,
    ApiJson(request): ApiJson<MarkReadRequest>,
) -> Result<Json<ReadMarkerResponse>, ApiError> {
    let now = state.now();
    let read_marker = state
        .blocking(move |storage| storage.mark_read(&user.id, &id, &request.message_id, now))
        .await?;
    Ok(Json(ReadMarkerResponse { read_marker }))
}

/// `GET /v1/conversations`.
pub(crate) async fn conversations_list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<ConversationsResponse>, ApiError> {
    let conversations = state
        .blocking(move |storage| storage.conversations(&user.id))
        .await?;
    Ok(Json(ConversationsResponse { conversations }))
}

/// `POST /v1/conversations`.
pub(crate) async fn conversations_create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(request): ApiJson<CreateConversationRequest>,
) -> Result<(StatusCode, Json<ConversationResponse>), ApiError> {
    request.validate(&user.id)?;
    let now = state.now();
    let conversation = state
        .blocking(move |storage| {
            storage.create_conversation(&user.id, request.title.trim(), &request.member_ids, now)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ConversationResponse { conversation }),
    ))
}

/// Unknown paths under `/v1`.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

/// Known paths with a method they do not take.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not take this method",
    )
}

/// The page size to use: the default when absent, capped at `max` (however many digits it has),
/// and anything but a positive integer refused.
fn page_limit(requested: Option<String>, default: u32, max: u32) -> Result<u32, ApiError> {
    let Some(requested) = requested else {
        return Ok(default);
    };
    match requested.parse::<u64>() {
        Ok(limit) if limit > 0 => Ok(u32::try_from(limit).unwrap_or(max).min(max)),
        Err(error) if *error.kind() == IntErrorKind::PosOverflow => Ok(max),
        _ => Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "`limit` must be a positive integer",
        )),
    }
}
