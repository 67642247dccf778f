//! Validation of request bodies against the documented limits, shared by client and server, so a
//! client can refuse a message before it queues it and the server gives the same answer.

use crate::limits::{MAX_CLIENT_MESSAGE_ID_CHARS, MAX_MEMBERS, MAX_MESSAGE_CHARS, MAX_TITLE_CHARS};
use crate::{
    ClientMessageId, CreateConversationRequest, EditMessageRequest, ErrorCode, SendMessageRequest,
    UserId,
};
use std::collections::HashSet;

/// Why a request body breaks the protocol's rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The message body is empty or only whitespace.
    #[error("message body is empty")]
    EmptyMessage,
    /// The message body has more than [`MAX_MESSAGE_CHARS`] characters.
    #[error("message body is {chars} characters; the limit is {MAX_MESSAGE_CHARS}")]
    MessageTooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// The `clientMessageId` is empty, too long or has characters outside `A–Z a–z 0–9 - _`.
    #[error(
        "clientMessageId must be 1 to {MAX_CLIENT_MESSAGE_ID_CHARS} characters of A-Z a-z 0-9 - _"
    )]
    InvalidClientMessageId,
    /// The conversation title is empty, only whitespace or longer than [`MAX_TITLE_CHARS`].
    #[error("title must be 1 to {MAX_TITLE_CHARS} characters")]
    InvalidTitle,
    /// More than [`MAX_MEMBERS`] members.
    #[error("a conversation has at most {MAX_MEMBERS} members")]
    TooManyMembers,
}

impl ValidationError {
    /// The error code the server answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ValidationError::EmptyMessage => ErrorCode::EmptyMessage,
            ValidationError::MessageTooLong { .. } => ErrorCode::MessageTooLong,
            ValidationError::InvalidClientMessageId
            | ValidationError::InvalidTitle
            | ValidationError::TooManyMembers => ErrorCode::InvalidField,
        }
    }
}

/// Checks a message body: not blank, at most [`MAX_MESSAGE_CHARS`] characters.
pub fn validate_message_body(body: &str) -> Result<(), ValidationError> {
    if body.trim().is_empty() {
        return Err(ValidationError::EmptyMessage);
    }
    let chars = body.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(ValidationError::MessageTooLong { chars });
    }
    Ok(())
}

impl ClientMessageId {
    /// Checks the id: 1 to [`MAX_CLIENT_MESSAGE_ID_CHARS`] characters of `A–Z a–z 0–9 - _`.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let id = self.as_str();
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if id.is_empty() || id.len() > MAX_CLIENT_MESSAGE_ID_CHARS || !id.chars().all(allowed) {
            return Err(ValidationError::InvalidClientMessageId);
        }
        Ok(())
    }
}

impl SendMessageRequest {
    /// Checks the request against the protocol's limits.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.client_message_id.validate()?;
        validate_message_body(&self.body)
    }
}

impl EditMessageRequest {
    /// Checks the request against the protocol's limits.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_message_body(&self.body)
    }
}

impl CreateConversationRequest {
    /// Checks the request against the protocol's limits as the conversation is stored: the title
    /// trimmed, and the members distinct with `creator` among them. (The server also checks that
    /// the members exist.)
    pub fn validate(&self, creator: &UserId) -> Result<(), ValidationError> {
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
            return Err(ValidationError::InvalidTitle);
        }
        let members: HashSet<&UserId> = self.member_ids.iter().chain([creator]).collect();
        if members.len() > MAX_MEMBERS {
            return Err(ValidationError::TooManyMembers);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_body_limits_count_characters_not_bytes() {
        assert_eq!(validate_message_body("hi"), Ok(()));
        assert_eq!(
            validate_message_body("  \n\t"),
            Err(ValidationError::EmptyMessage)
        );
        assert_eq!(
            validate_message_body(""),
            Err(ValidationError::EmptyMessage)
        );
        let max = "é".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(validate_message_body(&max), Ok(()));
        let over = format!("{max}x");
        assert_eq!(
            validate_message_body(&over),
            Err(ValidationError::MessageTooLong {
                chars: MAX_MESSAGE_CHARS + 1
            })
        );
        assert_eq!(
            ValidationError::MessageTooLong { chars: 1 }.code(),
            ErrorCode::MessageTooLong
        );
    }

    #[test]
    fn client_message_id_allows_only_the_documented_alphabet() {
        for ok in ["a", "01JD5Q6Z4N8WQ3K2", "x-y_z", &"a".repeat(64)] {
            assert_eq!(ClientMessageId::new(ok).validate(), Ok(()), "{ok}");
        }
        for bad in ["", "a b", "ü", "a/b", &"a".repeat(65)] {
            assert_eq!(
                ClientMessageId::new(bad).validate(),
                Err(ValidationError::InvalidClientMessageId),
                "{bad}"
            );
        }
    }

    #[test]
    fn conversation_title_and_member_count_are_bounded_as_stored() {
        let creator = UserId::new("u0");
        let request = |title: &str, members: std::ops::Range<usize>| CreateConversationRequest {
            title: title.into(),
            member_ids: members.map(|i| format!("u{i}").into()).collect(),
        };
        assert_eq!(request("Lunch", 1..100).validate(&creator), Ok(()));
        assert_eq!(
            request("Lunch", 1..101).validate(&creator),
            Err(ValidationError::TooManyMembers)
        );
        // Members count once each, the creator too: 100 distinct members in 200 ids.
        let mut repeated = request("Lunch", 0..100);
        repeated.member_ids.extend(repeated.member_ids.clone());
        assert_eq!(repeated.validate(&creator), Ok(()));
        assert_eq!(
            request(" ", 1..2).validate(&creator),
            Err(ValidationError::InvalidTitle)
        );
        assert_eq!(
            request(&"t".repeat(201), 1..2).validate(&creator),
            Err(ValidationError::InvalidTitle)
        );
        // The title is stored trimmed, so its limit counts the trimmed title.
        let padded = format!("  {}  ", "t".repeat(MAX_TITLE_CHARS));
        assert_eq!(request(&padded, 1..2).validate(&creator), Ok(()));
    }
}
