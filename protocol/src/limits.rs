//! The documented limits of protocol v1.

/// Largest request body the server accepts, in bytes, after gzip decoding.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest message body, in characters (Unicode scalar values).
pub const MAX_MESSAGE_CHARS: usize = 4_000;
/// Longest `clientMessageId`, in characters.
pub const MAX_CLIENT_MESSAGE_ID_CHARS: usize = 64;
/// Longest conversation title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Most members of one conversation, the creator included.
pub const MAX_MEMBERS: usize = 100;
/// Feed page size when the request names none.
pub const FEED_PAGE_DEFAULT: u32 = 100;
/// Largest feed page; larger `limit`s are capped to it.
pub const FEED_PAGE_MAX: u32 = 500;
/// History page size when the request names none.
pub const HISTORY_PAGE_DEFAULT: u32 = 50;
/// Largest history page; larger `limit`s are capped to it.
pub const HISTORY_PAGE_MAX: u32 = 200;
