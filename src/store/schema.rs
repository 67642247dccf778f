//! Schema migrations: numbered steps run in `upgradeneeded`, one function each, never edited once
//! shipped. A schema change is a new step at the end and a higher [`SCHEMA_VERSION`].

use super::codec::*;
use idb::{Database, Error, IndexParams, KeyPath, ObjectStoreParams, Transaction};

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: u32 = 4;

/// One upgrade step, given the database and the `versionchange` transaction.
type Step = fn(&Database, &Transaction) -> Result<(), Error>;

/// Step `i` brings the schema to version `i + 1`.
const STEPS: [Step; SCHEMA_VERSION as usize] = [
    v1_initial,
    v2_server_id_index,
    v3_history_floors,
    v4_tombstone_index,
];

/// Runs the steps from `old_version` up to `new_version`.
pub(crate) fn upgrade(
    database: &Database,
    transaction: &Transaction,
    old_version: u32,
    new_version: u32,
) -> Result<(), Error> {
    for step in STEPS
        .iter()
        .take(new_version as usize)
        .skip(old_version as usize)
    {
        step(database, transaction)?;
    }
    Ok(())
}

/// Version 1: the object stores and their indexes, and the meta record.
fn v1_initial(database: &Database, transaction: &Transaction) -> Result<(), Error> {
    let keyed = |key_path: KeyPath| {
        let mut params = ObjectStoreParams::new();
        params.key_path(Some(key_path));
        params
    };
    let conversations =
        database.create_object_store(CONVERSATIONS, keyed(KeyPath::new_single("id")))?;
    conversations.create_index(BY_ACTIVITY, KeyPath::new_single("lastActivity"), None)?;
    let messages = database.create_object_store(
        MESSAGES,
        keyed(KeyPath::new_array(["senderId", "clientMessageId"])),
    )?;
    messages.create_index(
        BY_CONVERSATION,
        KeyPath::new_array(["conversationId", "sortTs"]),
        None,
    )?;
    messages.create_index(
        BY_CLIENT_MESSAGE_ID,
        KeyPath::new_single("clientMessageId"),
        None,
    )?;
    database.create_object_store(OUTBOX, keyed(KeyPath::new_single("clientMessageId")))?;
    database.create_object_store(
        READ_MARKERS,
        keyed(KeyPath::new_array(["conversationId", "userId"])),
    )?;
    database.create_object_store(META, ObjectStoreParams::new())?;
    let meta = to_js(&MetaRecord::fresh()).map_err(|_| Error::InvalidKeyPath)?;
    transaction
        .object_store(META)?
        .put(&meta, Some(&META_KEY.into()))?;
    Ok(())
}

/// Version 2: messages findable by their server id.
fn v2_server_id_index(_: &Database, transaction: &Transaction) -> Result<(), Error> {
    let mut params = IndexParams::new();
    params.unique(false);
    transaction.object_store(MESSAGES)?.create_index(
        BY_SERVER_ID,
        KeyPath::new_single("id"),
        Some(params),
    )?;
    Ok(())
}

/// Version 3: history floors, kept apart from the conversations so that eviction, which forgets
/// them, only deletes (it works when storage is full). Conversations from before have none: their
/// caches count as whole from their oldest message, as they did.
fn v3_history_floors(database: &Database, _: &Transaction) -> Result<(), Error> {
    database.create_object_store(HISTORY, ObjectStoreParams::new())?;
    Ok(())
}

/// Version 4: tombstones findable by when they were deleted (`tombstoneTs`, which only
/// tombstones carry), so compaction reads only those it removes. Tombstones from before lack the
/// field, and their meta record says so (`tombstonesIndexed` missing): the next compaction walks
/// every message once and marks them (a walk here would hold the open up for as long).
fn v4_tombstone_index(_: &Database, transaction: &Transaction) -> Result<(), Error> {
    let mut params = IndexParams::new();
    params.unique(false);
    transaction.object_store(MESSAGES)?.create_index(
        BY_TOMBSTONE_TS,
        KeyPath::new_single(TOMBSTONE_TS),
        Some(params),
    )?;
    Ok(())
}
