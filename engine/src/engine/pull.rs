//! Pulling: the global change feed (the "sync run"), per-conversation syncs and history back-fill.
//! Each page and its cursor are written in one batch (for the global feed after its first page,
//! several pages and the last one's cursor: [`HOLD_CHANGES`]); the cursor moves in memory only
//! after the store holds the page. A run's pages after its first are larger
//! ([`crate::Config::catch_up_page_size`]): only a backlog has them. The feed is fetched on while
//! its pages are written, one write at a time: pages fetched meanwhile are held, and if the write
//! fails they are dropped and fetched again from the stored cursor.

use super::persist::{after_held, AfterPersist, HeldPages, PageSource, PageWrite};
use super::requests::{Purpose, Verdict};
use super::Engine;
use crate::config::BrokenVariant;
use crate::event::{ChangeSet, SyncSummary, Ticket};
use crate::sort::sort_by;
use crate::status::{SyncError, Trigger};
use crate::store::{HistoryFloor, LocalMessage, StoreOp};
use crate::transport::Method;
use chat_sync_protocol::{
    paths, Change, ClientMessageId, ConversationId, Cursor, ErrorCode, Message, Millis,
    ResponseBody, ResponseKind,
};

/// Where a pull stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    /// The next request may go.
    Ready,
    /// A request is in flight.
    Requested,
    /// A page is being stored (for the sync run: the next request waits for the feed write in
    /// flight, because the last page is fetched or enough pages are held).
    Persisting,
    /// Sync run only: a request is in flight whose answer is not wanted, because the write of
    /// the pages it continues failed.
    Abandoned,
    /// Sync run only: the server refused the cursor, and the reset is being stored.
    Resetting,
}

/// In a sync run, feed pages after the first are held in memory and stored together until they
/// carry this many writes: fewer, larger transactions store a backlog faster, whether it is a
/// full sync (from no cursor) or a device catching up after days offline (`make bench`: each
/// transaction costs a commit; docs/benchmarks.md has the figures). The first page is stored on
/// its own, so the app shows something at once, and a run of one page (the usual periodic sync)
/// is stored as it comes; when a pull fails or sync stops, what was held is stored with its
/// cursor, and the next pull goes on from there.
pub(super) const HOLD_CHANGES: usize = 2_000;

/// The most a sync run halves its feed pages after timeouts: to a sixteenth.
const MAX_HALVINGS: u32 = 4;

/// The running global sync: feed pages until `hasMore` is false.
#[derive(Debug)]
pub(super) struct Run {
    /// Tells its page writes from those of a run stopped or failed before it (a write in
    /// flight then ends during this run).
    id: u64,
    started_at: Millis,
    tickets: Vec<Ticket>,
    stage: Stage,
    changes: usize,
    /// Counted in `syncs_failed` already.
    failed: bool,
    /// A page of this run is stored (so the next ones may be held).
    stored_a_page: bool,
    /// Feed pages fetched but not stored yet: their writes and what they changed.
    held: Option<HeldPages>,
    /// Feed requests of this run that timed out (up to [`MAX_HALVINGS`] count): each halves the
    /// pages asked for, so a link too slow for a large page within the timeout still gets through.
    halvings: u32,
    /// Set when the run reads the feed from its beginning (no cursor): the first floor its pages
    /// set in each conversation. Such a feed brings every message, so the write of the last page
    /// moves each of these floors on to `Complete` (unless eviction raised it meanwhile). An
    /// eviction of this engine's asked for before that write drops them
    /// ([`Engine::before_eviction`]).
    first_floors: Option<Vec<(ConversationId, HistoryFloor)>>,
}

/// A per-conversation sync.
#[derive(Debug)]
pub(super) struct PullJob {
    conversation: ConversationId,
    tickets: Vec<Ticket>,
    stage: Stage,
    changes: usize,
}

/// A history back-fill: one page below the floor `before`.
#[derive(Debug)]
pub(super) struct HistoryJob {
    conversation: ConversationId,
    before: HistoryFloor,
    tickets: Vec<Ticket>,
    stage: Stage,
}

impl Engine {
    /// Brings one conversation up to date before the global feed, without waiting out the
    /// engine's own backoff (the server's `Retry-After` holds). The ticket finishes when it is.
    pub fn sync_conversation(&mut self, conversation: ConversationId, now: Millis) -> Ticket {
        self.advance(now);
        let ticket = self.new_ticket();
        self.last_trigger = Some(Trigger::Conversation);
        match self.command_blocker() {
            None => {
                self.skip_pull_backoff();
                self.enqueue_conversation_job(conversation, Some(ticket));
            }
            Some(error) => self.finish_ticket(ticket, Err(error)),
        }
        ticket
    }

    /// A pull the app asked for goes at once: the engine's own backoff is skipped (as by a
    /// forced sync), the server's `Retry-After` is not. Failed attempts still count, so the
    /// backoff after another failure is as long as it would have been.
    fn skip_pull_backoff(&mut self) {
        self.pull_retry_at = self.pull_retry_at.min(self.server_retry_at.max(self.now));
    }

    /// Loads one page of a conversation's history below `before`, its [`HistoryFloor`] as the
    /// store has it ([`crate::Store::history_floor`]), and moves the floor down to the page's
    /// oldest message, without waiting out the engine's own backoff (the server's `Retry-After`
    /// holds). The ticket's summary tells whether more remain; below a `Complete` floor nothing
    /// does, and no request goes.
    pub fn load_older(
        &mut self,
        conversation: ConversationId,
        before: HistoryFloor,
        now: Millis,
    ) -> Ticket {
        self.advance(now);
        let ticket = self.new_ticket();
        if before == HistoryFloor::Complete {
            let summary = SyncSummary {
                changes: 0,
                has_more: false,
            };
            self.finish_ticket(ticket, Ok(summary));
            return ticket;
        }
        if let Some(error) = self.command_blocker() {
            self.finish_ticket(ticket, Err(error));
            return ticket;
        }
        self.skip_pull_backoff();
        match self
            .history_jobs
            .iter_mut()
            .find(|job| job.conversation == conversation && job.before == before)
        {
            Some(job) => job.tickets.push(ticket),
            None => self.history_jobs.push(HistoryJob {
                conversation,
                before,
                tickets: vec![ticket],
                stage: Stage::Ready,
            }),
        }
        ticket
    }

    /// One scheduler for every trigger: starts a sync run, or joins the running one.
    pub(super) fn trigger(&mut self, trigger: Trigger, mut ticket: Option<Ticket>) {
        self.last_trigger = Some(trigger);
        if let Some(error) = self.command_blocker() {
            if let Some(ticket) = ticket.take() {
                self.finish_ticket(ticket, Err(error));
            }
        }
        // A ticket failed for a long server wait still starts the run: it goes when the wait
        // ends.
        if !self.network_allowed() {
            return;
        }
        log::trace!(trigger = format!("{trigger:?}").as_str(); "sync triggered");
        if let Some(open) = self.open_conversation.clone() {
            self.enqueue_conversation_job(open, None);
        }
        match &mut self.run {
            Some(run) => run.tickets.extend(ticket),
            None => {
                let id = self.next_run_id;
                self.next_run_id += 1;
                self.run = Some(Run {
                    id,
                    started_at: self.now,
                    tickets: ticket.into_iter().collect(),
                    // (After a reset under way: from the start, once it is stored.)
                    stage: match self.resetting {
                        true => Stage::Resetting,
                        false => Stage::Ready,
                    },
                    changes: 0,
                    failed: false,
                    stored_a_page: false,
                    held: None,
                    halvings: 0,
                    // (Not when an earlier run's pages are being written: this one goes on
                    // from them.)
                    first_floors: (self.cursor.is_none() && self.feed_writing.is_none())
                        .then(Vec::new),
                });
                self.reload_owed = true;
                self.reset_if_owed();
            }
        }
        self.next_periodic = None;
    }

    fn enqueue_conversation_job(&mut self, conversation: ConversationId, ticket: Option<Ticket>) {
        match self
            .conversation_jobs
            .iter_mut()
            .find(|job| job.conversation == conversation)
        {
            Some(job) => job.tickets.extend(ticket),
            None => self.conversation_jobs.push(PullJob {
                conversation,
                tickets: ticket.into_iter().collect(),
                stage: Stage::Ready,
                changes: 0,
            }),
        }
    }

    fn pull_allowed(&self) -> bool {
        self.pull_retry_at <= self.now
    }

    pub(super) fn send_feed_page(&mut self) -> bool {
        if !self.pull_allowed() {
            return false;
        }
        let (held_cursor, stored_a_page, halvings) = match &mut self.run {
            Some(run) if run.stage == Stage::Ready => {
                run.stage = Stage::Requested;
                let held = run.held.as_ref();
                let cursor = held.and_then(|(_, write)| write.source.feed_cursor().cloned());
                (cursor, run.stored_a_page, run.halvings)
            }
            _ => return false,
        };
        // After the pages held, else after those being written, else after the stored ones.
        let held_after_run = self.held_after_run.as_ref();
        let cursor = held_cursor
            .as_ref()
            .or(held_after_run.and_then(|(_, write)| write.source.feed_cursor()))
            .or(self.feed_writing.as_ref())
            .or(self.cursor.as_ref());
        let size = match stored_a_page || self.feed_writing.is_some() {
            true => self.catch_up_page_size(),
            false => self.page_size(),
        };
        let limit = (size >> halvings).max(1).to_string();
        let path = paths::with_query(
            paths::SYNC,
            &[
                ("cursor", cursor.map(|c| c.as_str())),
                ("limit", Some(&limit)),
            ],
        );
        self.issue(
            Purpose::FeedPage,
            Method::Get,
            path,
            None,
            ResponseKind::Feed,
        );
        true
    }

    pub(super) fn send_conversation_page(&mut self) -> bool {
        if !self.pull_allowed() || self.resetting {
            return false;
        }
        let Some(job) = self
            .conversation_jobs
            .iter_mut()
            .find(|job| job.stage == Stage::Ready)
        else {
            return false;
        };
        job.stage = Stage::Requested;
        let conversation = job.conversation.clone();
        let cursor = self
            .conversation_cursor(&conversation)
            .or(self.cursor.as_ref());
        let limit = self.page_size().to_string();
        let path = paths::with_query(
            &paths::conversation_sync(&conversation),
            &[
                ("cursor", cursor.map(|c| c.as_str())),
                ("limit", Some(&limit)),
            ],
        );
        self.issue(
            Purpose::ConversationPage(conversation),
            Method::Get,
            path,
            None,
            ResponseKind::Feed,
        );
        true
    }

    pub(super) fn send_history_page(&mut self) -> bool {
        if !self.pull_allowed() || self.resetting {
            return false;
        }
        let Some(job) = self
            .history_jobs
            .iter_mut()
            .find(|job| job.stage == Stage::Ready)
        else {
            return false;
        };
        job.stage = Stage::Requested;
        let conversation = job.conversation.clone();
        let before = job.before.clone();
        let before_id = match &before {
            HistoryFloor::From { id, .. } => Some(id.as_str()),
            HistoryFloor::Complete | HistoryFloor::Unknown => None,
        };
        let limit = self.config.history_page_size.to_string();
        let path = paths::with_query(
            &paths::messages(&conversation),
            &[("beforeMessage", before_id), ("limit", Some(&limit))],
        );
        self.issue(
            Purpose::History(conversation, before),
            Method::Get,
            path,
            None,
            ResponseKind::History,
        );
        true
    }

    pub(super) fn on_feed_outcome(&mut self, verdict: Verdict) {
        match self.run.as_ref().map(|run| run.stage) {
            Some(Stage::Requested) => {}
            Some(Stage::Abandoned) => {
                // It went on from pages whose write failed: the feed goes on from the stored
                // cursor instead.
                self.set_run_stage(Stage::Ready);
                return;
            }
            // An answer for a run that ended (stop) or was restarted: ignore it.
            _ => return,
        }
        match verdict {
            Verdict::Success(ResponseBody::Feed(page)) => {
                let synced_at = (!page.has_more).then_some(self.device_now());
                let source = PageSource::Feed {
                    cursor: page.next_cursor,
                    synced_at,
                    run: self.run.as_ref().map_or(0, |run| run.id),
                };
                let (ops, write) = self.page_write(page.changes, page.has_more, source);
                let Some(run) = &mut self.run else {
                    return;
                };
                if let Some(first_floors) = &mut run.first_floors {
                    note_first_floors(first_floors, &ops);
                }
                let (ops, write) = after_held(run.held.take(), (ops, write));
                let broken = self.config.broken == Some(BrokenVariant::CursorBeforeData);
                let may_hold = write.has_more && !broken && ops.len() < HOLD_CHANGES;
                // While a write is in flight, the pages wait for it; the feed goes on meanwhile
                // unless they end it or are enough to write.
                if self.feed_writing.is_some() || (run.stored_a_page && may_hold) {
                    run.stage = match may_hold {
                        true => Stage::Ready,
                        false => Stage::Persisting,
                    };
                    run.held = Some((ops, write));
                    return;
                }
                run.stage = match write.has_more {
                    true => Stage::Ready,
                    false => Stage::Persisting,
                };
                self.store_feed_pages(ops, write);
            }
            Verdict::InvalidCursor => self.reset_cursor("the server refused the feed cursor"),
            other => self.on_pull_failure(PullKind::Feed, other),
        }
    }

    pub(super) fn on_conversation_outcome(
        &mut self,
        conversation: ConversationId,
        verdict: Verdict,
    ) {
        let requested = self
            .conversation_jobs
            .iter()
            .any(|job| job.conversation == conversation && job.stage == Stage::Requested);
        if !requested {
            return;
        }
        match verdict {
            Verdict::Success(ResponseBody::Feed(page)) => {
                self.set_job_stage(&conversation, Stage::Persisting);
                let source = PageSource::Conversation(conversation, page.next_cursor);
                let (ops, write) = self.page_write(page.changes, page.has_more, source);
                self.persist_page(ops, write);
            }
            Verdict::InvalidCursor => self.reset_cursor("the server refused the feed cursor"),
            other => self.on_pull_failure(PullKind::Conversation(conversation), other),
        }
    }

    /// The answer to a back-fill below `before` (another below a different floor may be in
    /// flight, and answered first).
    pub(super) fn on_history_outcome(
        &mut self,
        conversation: ConversationId,
        before: HistoryFloor,
        verdict: Verdict,
    ) {
        match verdict {
            Verdict::Success(ResponseBody::History(page)) => {
                // Newest first: the last message is the oldest.
                let to = match (page.has_more, page.messages.last()) {
                    (false, _) => Some(HistoryFloor::Complete),
                    (true, oldest) => oldest.map(|m| HistoryFloor::From {
                        sort_ts: m.server_ts,
                        id: m.id.clone(),
                    }),
                };
                let changes = page
                    .messages
                    .into_iter()
                    .map(|message| Change::Message { message })
                    .collect();
                let requested = self
                    .history_job(&conversation, &before, Stage::Requested)
                    .map(|job| job.stage = Stage::Persisting)
                    .is_some();
                let source = PageSource::History(conversation.clone(), before.clone());
                let (mut ops, write) = self.page_write(changes, page.has_more, source);
                if let (true, Some(to)) = (requested, to) {
                    ops.push(StoreOp::ExtendHistory {
                        conversation,
                        from: before,
                        to,
                    });
                }
                self.persist_page(ops, write);
            }
            Verdict::Permanent(SyncError::Server { error_code, .. })
                if error_code == ErrorCode::MessageNotFound.as_str() =>
            {
                self.restart_history(conversation, before)
            }
            other => self.on_pull_failure(PullKind::History(conversation, before), other),
        }
    }

    /// The server no longer has the message a back-fill asked below (it purged old history, or
    /// its database was replaced): the floor goes back to `Unknown`, so the next back-fill
    /// starts again from the newest message. The command finishes as a page with nothing in it.
    fn restart_history(&mut self, conversation: ConversationId, from: HistoryFloor) {
        let Some(job) = self.history_job(&conversation, &from, Stage::Requested) else {
            return;
        };
        job.stage = Stage::Persisting;
        let message = "the server no longer has the oldest message loaded; back-fill starts over";
        log::warn!(conversation = conversation.as_str(); "{message}");
        let source = PageSource::History(conversation.clone(), from.clone());
        let (mut ops, write) = self.page_write(Vec::new(), true, source);
        ops.push(StoreOp::RestartHistory { conversation, from });
        self.persist_page(ops, write);
    }

    /// The writes of a page: last-write-wins puts, outbox entries the page shows delivered, and
    /// for a feed page, [`history_from_unedited`] of each conversation's first unedited message.
    fn page_write(
        &self,
        changes: Vec<Change>,
        has_more: bool,
        source: PageSource,
    ) -> (Vec<StoreOp>, PageWrite) {
        let mut ops = Vec::with_capacity(changes.len() + 2);
        let mut changed = ChangeSet::default();
        let mut delivered: Vec<(ClientMessageId, Message)> = Vec::new();
        let mut messages_pulled = 0;
        let from_feed = !matches!(source, PageSource::History(..));
        // Per conversation, the extension of its first unedited message.
        let mut extensions: Vec<StoreOp> = Vec::new();
        for change in changes {
            changed.add(change.conversation_id());
            match change {
                Change::Conversation { conversation } => {
                    ops.push(StoreOp::PutConversation(conversation))
                }
                Change::ReadMarker { read_marker } => ops.push(StoreOp::PutReadMarker(read_marker)),
                Change::Message { message } => {
                    messages_pulled += 1;
                    let ours = message.sender_id == self.config.user_id
                        && self
                            .outbox
                            .values()
                            .any(|item| item.entry.client_message_id == message.client_message_id);
                    if ours {
                        ops.push(StoreOp::RemoveOutbox(message.client_message_id.clone()));
                        delivered.push((message.client_message_id.clone(), message.clone()));
                    }
                    let known = extensions.iter().any(|op| {
                        matches!(op, StoreOp::ExtendHistory { conversation, .. }
                            if conversation == &message.conversation_id)
                    });
                    if from_feed && !known {
                        extensions.extend(history_from_unedited(&message));
                    }
                    ops.push(StoreOp::PutMessage(LocalMessage::from_server(message)));
                }
            }
        }
        ops.extend(extensions);
        let write = PageWrite {
            source,
            changes: ChangeSet {
                messages: messages_pulled,
                ..changed
            },
            messages_pulled,
            delivered,
            has_more,
        };
        (ops, write)
    }

    pub(super) fn after_page(&mut self, page: PageWrite) {
        self.stats.messages_pulled += page.messages_pulled as u64;
        let count = page.changes.conversations.len();
        let changed = page.changes.messages;
        self.mark_delivered(page.delivered);
        if count > 0 {
            self.emit(crate::Event::Changed(page.changes));
        }
        self.pull_attempts = 0;
        match page.source {
            PageSource::Feed {
                cursor,
                synced_at,
                run: written_by,
            } => {
                self.feed_writing = None;
                self.cursor = Some(cursor);
                if synced_at.is_some() {
                    self.last_sync = synced_at;
                }
                if let Some((ops, write)) = self.held_after_run.take() {
                    self.store_feed_pages(ops, write);
                    return;
                }
                let Some(run) = &mut self.run else {
                    return;
                };
                // The pages of a run stopped (or failed) before this one neither count in it
                // nor end it; pages this one holds behind them are written all the same.
                let own = run.id == written_by;
                if own {
                    run.changes += changed;
                    run.stored_a_page = true;
                }
                if run.stage == Stage::Resetting {
                    return;
                }
                // Pages held meanwhile are written now when they end the feed, are enough, or
                // no request is fetching more.
                let write_held = run.held.as_ref().is_some_and(|(ops, write)| {
                    !write.has_more || ops.len() >= HOLD_CHANGES || run.stage != Stage::Requested
                });
                if write_held {
                    if let Some((ops, write)) = run.held.take() {
                        if run.stage == Stage::Persisting && write.has_more {
                            run.stage = Stage::Ready;
                        }
                        self.store_feed_pages(ops, write);
                    }
                } else if own
                    && !page.has_more
                    && run.held.is_none()
                    && run.stage != Stage::Requested
                {
                    self.finish_run(Ok(()));
                }
            }
            PageSource::Conversation(conversation, cursor) => {
                self.set_conversation_cursor(conversation.clone(), cursor);
                let Some(index) = self
                    .conversation_jobs
                    .iter()
                    .position(|job| job.conversation == conversation)
                else {
                    return;
                };
                let job = &mut self.conversation_jobs[index];
                job.changes += changed;
                if page.has_more {
                    job.stage = Stage::Ready;
                } else {
                    let job = self.conversation_jobs.remove(index);
                    let summary = SyncSummary {
                        changes: job.changes,
                        has_more: false,
                    };
                    for ticket in job.tickets {
                        self.finish_ticket(ticket, Ok(summary));
                    }
                }
            }
            PageSource::History(conversation, before) => {
                let summary = SyncSummary {
                    changes: changed,
                    has_more: page.has_more,
                };
                self.finish_history_job(&conversation, &before, Ok(summary));
            }
        }
    }

    pub(super) fn on_page_write_failed(&mut self, source: PageSource, error: SyncError) {
        let kind = match source {
            PageSource::Feed { .. } => {
                self.feed_writing = None;
                // They went on from these pages.
                self.held_after_run = None;
                if let Some(run) = &mut self.run {
                    // What was fetched after these pages goes with them: fetched again from the
                    // stored cursor.
                    run.held = None;
                    run.stage = match run.stage {
                        Stage::Requested => Stage::Abandoned,
                        Stage::Resetting => Stage::Resetting,
                        _ => Stage::Ready,
                    };
                }
                PullKind::Feed
            }
            PageSource::Conversation(id, _) => PullKind::Conversation(id),
            PageSource::History(id, before) => PullKind::History(id, before),
        };
        self.on_pull_failure(
            kind,
            Verdict::Retry {
                error,
                retry_after: None,
            },
        );
    }

    /// The store's database was deleted while this engine ran (site data cleared, storage
    /// evicted) and started over empty: the cursor, each history's floor and the outbox went with
    /// it. The outbox and the read markers not sent yet are written again at once, and the
    /// engine syncs from the start once it runs (it leads) and no run is under way, as after a
    /// refused cursor. (A tab that does not lead leaves that to the leader: its driver tells the
    /// leading tab instead.)
    pub fn handle_store_wiped(&mut self, now: Millis) {
        self.advance(now);
        self.reset_owed = Some("the local database was deleted while in use");
        self.write_outbox_again();
    }

    /// A reset owed ([`Self::handle_store_wiped`], or one whose write failed) starts a sync
    /// once none is under way; its run does the reset ([`Self::reset_if_owed`]).
    pub(super) fn start_over_if_owed(&mut self) {
        if self.reset_owed.is_some() && self.run.is_none() && self.feed_writing.is_none() {
            self.trigger(Trigger::Start, None);
        }
    }

    /// A new sync run starts with the reset owed, if one is: it empties what the store holds of
    /// the server, and the run syncs from the start. Not while a write of feed pages or another
    /// reset is under way, nor in the pull's backoff (the run after this one does it then).
    fn reset_if_owed(&mut self) {
        if self.resetting || self.feed_writing.is_some() || !self.pull_allowed() {
            return;
        }
        let Some(why) = self.reset_owed.take() else {
            return;
        };
        self.reset_cursor(why);
    }

    /// The write of a reset failed: it is owed still, and goes again once the run ends (the
    /// run goes on after the pull's backoff; when its cursor was refused, it meets the refusal,
    /// and resets, again).
    pub(super) fn on_cursor_reset_failed(&mut self, error: SyncError) {
        self.reset_owed = Some("the reset of the cache could not be stored");
        self.end_reset();
        self.on_pull_failure(
            PullKind::Feed,
            Verdict::Retry {
                error,
                retry_after: None,
            },
        );
    }

    /// The cursor is not valid on this server (its database was replaced): the cache may hold
    /// what the server no longer has, so it is emptied of the server's data (the outbox stays),
    /// and sync starts over. Pulls and read markers under way are forgotten (their answers, to
    /// the old cursor or from the old database, would be stored after the reset, or reset
    /// again); the sync run, the conversation syncs and the back-fills wait for the reset's
    /// write, then go again, and the read markers go again.
    fn reset_cursor(&mut self, why: &str) {
        log::warn!("{why}; replacing the cache by a sync from the start");
        self.resetting = true;
        // Written after the reset, they would bring the old data back.
        self.held_after_run = None;
        self.in_flight.retain(|(_, flight)| {
            !matches!(
                flight.purpose,
                Purpose::FeedPage
                    | Purpose::ConversationPage(_)
                    | Purpose::History(..)
                    | Purpose::MarkRead(_)
            )
        });
        self.resend_read_markers_in_flight();
        self.set_run_stage(Stage::Resetting);
        for job in &mut self.conversation_jobs {
            if job.stage == Stage::Requested {
                job.stage = Stage::Persisting;
            }
        }
        for job in &mut self.history_jobs {
            if job.stage == Stage::Requested {
                job.stage = Stage::Ready;
            }
        }
        let ops = vec![StoreOp::ForgetServerData, StoreOp::SetCursor(None)];
        self.persist(ops, AfterPersist::CursorReset);
    }

    /// After a cursor reset is stored, pulls go again from the start; the app hears which
    /// conversations the cache no longer holds anything of.
    pub(super) fn after_cursor_reset(&mut self, forgotten: ChangeSet) {
        if !forgotten.conversations.is_empty() {
            self.emit(crate::Event::Changed(forgotten));
        }
        self.reset_owed = None;
        self.cursor = None;
        self.conversation_cursors.clear();
        if let Some(run) = &mut self.run {
            // The feed starts over: what was held came after the refused cursor.
            run.held = None;
            run.first_floors = Some(Vec::new());
        }
        self.end_reset();
    }

    /// A reset's write ended (stored or failed): the sync run and the conversation syncs that
    /// waited for it go on.
    fn end_reset(&mut self) {
        self.resetting = false;
        if let Some(run) = &mut self.run {
            if run.stage == Stage::Resetting {
                run.stage = Stage::Ready;
            }
        }
        for job in &mut self.conversation_jobs {
            if job.stage == Stage::Persisting {
                job.stage = Stage::Ready;
            }
        }
    }

    fn on_pull_failure(&mut self, kind: PullKind, verdict: Verdict) {
        let (error, retry_after, permanent) = match verdict {
            Verdict::Retry { error, retry_after } => (error, retry_after, false),
            Verdict::Permanent(error) => (error, None, true),
            Verdict::Auth => (SyncError::Auth, None, false),
            Verdict::Success(_) | Verdict::InvalidCursor => (
                SyncError::Protocol {
                    message: "unexpected answer to a pull".into(),
                },
                None,
                false,
            ),
        };
        log::warn!(error = error.to_string().as_str(), permanent = permanent; "pull failed");
        if !permanent && error != SyncError::Auth {
            self.pull_attempts += 1;
            self.pull_retry_at = self.retry_time(self.pull_attempts, error.clone(), retry_after);
        } else {
            self.last_error = Some(error.clone());
        }
        match kind {
            PullKind::Feed => {
                if permanent {
                    self.store_held_pages();
                    // Behind a write in flight: they go after it, and after what an earlier run
                    // left there (this run went on from those pages).
                    let earlier = self.held_after_run.take();
                    self.held_after_run = match self.run.as_mut().and_then(|run| run.held.take()) {
                        Some(held) => Some(after_held(earlier, held)),
                        None => earlier,
                    };
                    self.finish_run(Err(error));
                    return;
                }
                self.store_held_pages();
                let Some(run) = &mut self.run else {
                    return;
                };
                if run.stage == Stage::Requested {
                    run.stage = Stage::Ready;
                }
                if error == SyncError::Timeout {
                    run.halvings = (run.halvings + 1).min(MAX_HALVINGS);
                }
                let first_failure = !run.failed;
                run.failed = true;
                let tickets = std::mem::take(&mut run.tickets);
                if first_failure {
                    self.stats.syncs_failed += 1;
                }
                for ticket in tickets {
                    self.finish_ticket(ticket, Err(error.clone()));
                }
            }
            PullKind::Conversation(conversation) => {
                let Some(index) = self
                    .conversation_jobs
                    .iter()
                    .position(|job| job.conversation == conversation)
                else {
                    return;
                };
                let tickets = if permanent {
                    self.conversation_jobs.remove(index).tickets
                } else {
                    let job = &mut self.conversation_jobs[index];
                    job.stage = Stage::Ready;
                    std::mem::take(&mut job.tickets)
                };
                for ticket in tickets {
                    self.finish_ticket(ticket, Err(error.clone()));
                }
            }
            PullKind::History(conversation, before) => {
                // Back-fill is on demand: the app asks again when it still needs it.
                self.finish_history_job(&conversation, &before, Err(error));
            }
        }
    }

    /// History is about to be evicted. A sync run from the feed's beginning marks each
    /// conversation whole below the floor its pages set first, because it wrote everything
    /// there; eviction may take some of that (an old message, edited since, that came late in
    /// the feed), so the run no longer does.
    pub(super) fn before_eviction(&mut self) {
        if let Some(run) = &mut self.run {
            run.first_floors = None;
        }
    }

    /// Stores the feed pages held in memory with their cursor (a pull after them failed, or
    /// sync stopped): the next pull goes on from there, and nothing fetched is fetched again.
    /// While a write of feed pages is in flight they wait for it ([`Self::after_page`]).
    pub(super) fn store_held_pages(&mut self) {
        if self.feed_writing.is_some() {
            return;
        }
        if let Some((ops, write)) = self.run.as_mut().and_then(|run| run.held.take()) {
            self.store_feed_pages(ops, write);
        }
    }

    /// Stores feed pages (one, or several held) with the cursor after them, and with the sync
    /// time when they end the feed (and each history's claim to be whole, made now: an eviction
    /// asked for while they were held drops it). Only while no other write of feed pages is in
    /// flight.
    fn store_feed_pages(&mut self, mut ops: Vec<StoreOp>, write: PageWrite) {
        let first_floors = self.run.as_ref().and_then(|run| run.first_floors.as_ref());
        if let (Some(first_floors), false) = (first_floors, write.has_more) {
            ops.extend(
                first_floors
                    .iter()
                    .map(|(conversation, floor)| StoreOp::ExtendHistory {
                        conversation: conversation.clone(),
                        from: floor.clone(),
                        to: HistoryFloor::Complete,
                    }),
            );
        }
        if let PageSource::Feed {
            cursor, synced_at, ..
        } = &write.source
        {
            self.feed_writing = Some(cursor.clone());
            let cursor_op = StoreOp::SetCursor(Some(cursor.clone()));
            if self.config.broken == Some(BrokenVariant::CursorBeforeData) {
                // The contract tests' broken client: the cursor first, in a batch of its own.
                self.persist(vec![cursor_op], AfterPersist::Nothing);
            } else {
                ops.push(cursor_op);
            }
            if let Some(at) = synced_at {
                ops.push(StoreOp::SetLastSync(*at));
            }
        }
        self.persist_page(ops, write);
    }

    fn finish_run(&mut self, result: Result<(), SyncError>) {
        let Some(run) = self.run.take() else {
            return;
        };
        let summary = SyncSummary {
            changes: run.changes,
            has_more: false,
        };
        match &result {
            Ok(()) => {
                let duration = self.now - run.started_at;
                self.stats.syncs_completed += 1;
                self.record_duration(duration);
                self.last_error = None;
                // The global cursor now covers every conversation.
                self.conversation_cursors.clear();
                log::info!(changes = run.changes, duration_ms = duration; "sync finished");
            }
            Err(error) => {
                if !run.failed {
                    self.stats.syncs_failed += 1;
                }
                log::warn!(error = error.to_string().as_str(); "sync failed");
            }
        }
        for ticket in run.tickets {
            self.finish_ticket(ticket, result.clone().map(|()| summary));
        }
        self.next_periodic = Some(self.now + self.periodic_interval());
    }

    fn record_duration(&mut self, duration: Millis) {
        self.durations.push_back(duration);
        if self.durations.len() > 100 {
            self.durations.pop_front();
        }
        let mut sorted: Vec<Millis> = self.durations.iter().copied().collect();
        sort_by(&mut sorted, Ord::cmp);
        let count = sorted.len() as Millis;
        self.stats.last_sync_duration_ms = Some(duration);
        self.stats.mean_sync_duration_ms = Some(sorted.iter().sum::<Millis>() / count);
        let p95_index = ((sorted.len() * 95).div_ceil(100)).saturating_sub(1);
        self.stats.p95_sync_duration_ms = sorted.get(p95_index).copied();
    }

    /// The back-fill of `conversation` below `before`, if it is at `stage`.
    fn history_job(
        &mut self,
        conversation: &ConversationId,
        before: &HistoryFloor,
        stage: Stage,
    ) -> Option<&mut HistoryJob> {
        self.history_jobs.iter_mut().find(|job| {
            &job.conversation == conversation && &job.before == before && job.stage == stage
        })
    }

    /// Finishes the back-fill of `conversation` below `before`, unless it waits to be sent.
    fn finish_history_job(
        &mut self,
        conversation: &ConversationId,
        before: &HistoryFloor,
        result: Result<SyncSummary, SyncError>,
    ) {
        let Some(index) = self.history_jobs.iter().position(|job| {
            &job.conversation == conversation && &job.before == before && job.stage != Stage::Ready
        }) else {
            return;
        };
        for ticket in self.history_jobs.remove(index).tickets {
            self.finish_ticket(ticket, result.clone());
        }
    }

    fn set_run_stage(&mut self, stage: Stage) {
        if let Some(run) = &mut self.run {
            run.stage = stage;
        }
    }

    fn set_job_stage(&mut self, conversation: &ConversationId, stage: Stage) {
        if let Some(job) = self
            .conversation_jobs
            .iter_mut()
            .find(|job| &job.conversation == conversation)
        {
            job.stage = stage;
        }
    }

    /// Finishes every open pull command with `error`; the pulls themselves resume later.
    pub(super) fn fail_ticketed_jobs(&mut self, error: &SyncError) {
        let mut tickets: Vec<Ticket> = Vec::new();
        if let Some(run) = &mut self.run {
            tickets.append(&mut run.tickets);
        }
        for job in &mut self.conversation_jobs {
            tickets.append(&mut job.tickets);
        }
        for job in self.history_jobs.drain(..) {
            tickets.extend(job.tickets);
        }
        for ticket in tickets {
            self.finish_ticket(ticket, Err(error.clone()));
        }
    }

    /// Where conversation `id`'s own feed continues, if it was pulled on its own.
    fn conversation_cursor(&self, id: &ConversationId) -> Option<&Cursor> {
        let index = self
            .conversation_cursors
            .binary_search_by(|(known, _)| known.cmp(id))
            .ok()?;
        Some(&self.conversation_cursors[index].1)
    }

    /// Records where conversation `id`'s own feed continues.
    fn set_conversation_cursor(&mut self, id: ConversationId, cursor: Cursor) {
        match self
            .conversation_cursors
            .binary_search_by(|(known, _)| known.cmp(&id))
        {
            Ok(index) => self.conversation_cursors[index].1 = cursor,
            Err(index) => self.conversation_cursors.insert(index, (id, cursor)),
        }
    }
}

/// Which pull a failure belongs to.
enum PullKind {
    Feed,
    Conversation(ConversationId),
    History(ConversationId, HistoryFloor),
}

/// What a message as the server created it (unedited: its `updated_ts` is its `server_ts`),
/// fetched from the feed or answering a send, says of its conversation's history: it sits in the
/// feed at its creation, ahead of the cursor, so every message created after it comes later in
/// the feed, and the cache holds (or will hold) everything from it up. `None` for an edited
/// message, which may be an old one with a gap above it.
pub(super) fn history_from_unedited(message: &Message) -> Option<StoreOp> {
    (message.updated_ts == message.server_ts).then(|| StoreOp::ExtendHistory {
        conversation: message.conversation_id.clone(),
        from: HistoryFloor::Unknown,
        to: HistoryFloor::From {
            sort_ts: message.server_ts,
            id: message.id.clone(),
        },
    })
}

/// Adds to `first_floors` the floor each `ExtendHistory` of `ops` sets in a conversation not
/// seen before.
fn note_first_floors(first_floors: &mut Vec<(ConversationId, HistoryFloor)>, ops: &[StoreOp]) {
    for op in ops {
        if let StoreOp::ExtendHistory {
            conversation, to, ..
        } = op
        {
            if !first_floors.iter().any(|(known, _)| known == conversation) {
                first_floors.push((conversation.clone(), to.clone()));
            }
        }
    }
}
