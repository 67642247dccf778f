//! Newtype ids and cursors: opaque strings that cannot be mixed up with one another.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a string; no validation (see `validate` for what the server accepts).
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

string_id!(
    /// A user, assigned by the server.
    UserId
);
string_id!(
    /// A conversation, assigned by the server.
    ConversationId
);
string_id!(
    /// A message, assigned by the server when it first stores the message.
    MessageId
);
string_id!(
    /// The id a client chooses for a message it composes; the key of idempotent sends.
    ClientMessageId
);
string_id!(
    /// A position in the server's change log (`cursor`, `nextCursor`); opaque to clients.
    Cursor
);
string_id!(
    /// A position in one conversation's message order (`before`, `nextBefore`); opaque to clients.
    HistoryCursor
);
