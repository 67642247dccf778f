//! Deterministic, realistic chat messages: 20 conversations, 8 senders, bodies of 10–300
//! characters (mostly short, some long, a few non-ASCII words), server stamps increasing by
//! 0.1–5 s, and a few edited messages and tombstones.

use chat_sync_engine::protocol::{ClientMessageId, ConversationId, Message, MessageId, UserId};
use chat_sync_engine::LocalMessage;

/// How many conversations the messages spread over.
pub const CONVERSATIONS: u64 = 20;
/// How many people send them.
pub const SENDERS: u64 = 8;
/// The first server stamp (Nov 2023).
const FIRST_TS: i64 = 1_700_000_000_000;

const WORDS: [&str; 32] = [
    "hey",
    "ok",
    "sure",
    "the",
    "meeting",
    "is",
    "moved",
    "to",
    "tomorrow",
    "at",
    "three",
    "can",
    "you",
    "send",
    "me",
    "that",
    "link",
    "again",
    "thanks",
    "👍",
    "lunch",
    "café",
    "later",
    "?",
    "deploy",
    "looks",
    "good",
    "on",
    "staging",
    "🎉",
    "naïve",
    "question:",
];

/// The `n` benchmark messages, oldest first, as the store holds server messages. The same `n`
/// always gives the same messages.
pub fn messages(n: usize) -> Vec<LocalMessage> {
    let mut rng = SplitMix(0x5eed);
    let mut server_ts = FIRST_TS;
    (0..n)
        .map(|i| {
            server_ts += 100 + rng.below(4_900) as i64;
            let deleted = rng.below(100) == 0;
            let edited = !deleted && rng.below(50) == 0;
            let message = Message {
                id: MessageId::new(format!("m{:012}", i + 1)),
                conversation_id: ConversationId::new(format!(
                    "c{:013}",
                    FIRST_TS + rng.below(CONVERSATIONS) as i64
                )),
                client_message_id: ClientMessageId::new(rng.uuid()),
                sender_id: UserId::new(format!("user-{}", rng.below(SENDERS))),
                body: if deleted {
                    String::new()
                } else {
                    body(&mut rng)
                },
                server_ts,
                updated_ts: server_ts + if edited || deleted { 60_000 } else { 0 },
                edited,
                deleted,
            };
            LocalMessage::from_server(message)
        })
        .collect()
}

/// 10–300 characters, skewed short as chat is (mean about 107).
fn body(rng: &mut SplitMix) -> String {
    let unit = rng.below(1_000) as f64 / 1_000.0;
    let length = 10 + (290.0 * unit * unit) as usize;
    let mut body = String::new();
    while body.chars().count() < length {
        if !body.is_empty() {
            body.push(' ');
        }
        body.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    body.chars().take(length).collect()
}

/// SplitMix64: small, fast and good enough for test data.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// A random (version 4 shaped) UUID, as clients pick message ids.
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_deterministic_and_realistic() {
        let messages = messages(2_000);
        assert_eq!(messages, super::messages(2_000));
        assert!(messages.windows(2).all(|w| w[0].sort_ts < w[1].sort_ts));
        let lengths = messages
            .iter()
            .filter(|m| !m.deleted)
            .map(|m| m.body.chars().count());
        assert!(lengths.clone().all(|n| (10..=300).contains(&n)));
        assert!(lengths.max() > Some(250));
        let conversations: std::collections::BTreeSet<_> =
            messages.iter().map(|m| &m.conversation_id).collect();
        assert_eq!(conversations.len(), CONVERSATIONS as usize);
    }
}
