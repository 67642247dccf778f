// The chat-sync demo: sign in as a demo user, read and write conversations, offline too.
// Everything the page shows comes from the manager's local cache; the manager syncs it.
//
// Query parameters (for trying things out and for the end-to-end tests):
//   ?periodicSyncMs=5000           sync more often than every 5 minutes
//   ?logLevel=debug                the manager's console log level (default info)
//   ?optimisticTtlMs=60000         undelivered messages fail sooner than after 7 days
//   ?maintenanceIntervalMs=60000   maintenance (which fails them) more often than daily
//   ?retentionPerConversation=100  maintenance keeps only the newest 100 messages of each
//                                  conversation (older ones load from the server on scroll;
//                                  0 keeps none: they load when the conversation opens)

import { BackgroundSyncManager } from './pkg/index.js';
import './pkg/sync-refresh.js';
import { clearSession, loadSession, managerOptions, saveSession } from './session.js';
import {
  conversationItem, dayDivider, dayNumber, durationText, el, messageItem, messageKey, messageTime,
  patchChildren, relativeTime, unreadDivider,
} from './render.js';

/** The users `chat-sync-server --seed-demo` creates (id, name, token). */
const DEMO_USERS = [
  ['u-alice', 'Alice Martin', 'demo-alice'],
  ['u-bob', 'Bob Chen', 'demo-bob'],
  ['u-carol', 'Carol Díaz', 'demo-carol'],
  ['u-dave', 'Dave Okafor', 'demo-dave'],
  ['u-erin', 'Erin Schulz', 'demo-erin'],
];
/** How long the manager keeps trying to deliver a message (its `optimisticTtlMs`), unless the
 * page says otherwise. */
const DEFAULT_OPTIMISTIC_TTL_MS = 7 * 86_400_000;
/** Messages shown when a conversation opens, and per page when scrolling back. */
const PAGE = 50;
const BEGINNING = 'This is the beginning of the conversation.';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

/** What the page holds; `manager` is null while signed out. */
const state = {
  manager: null,
  session: null,
  /** The manager's `optimisticTtlMs`: how long undelivered messages are tried before they fail
   * (and, failed that long, are dropped). */
  optimisticTtlMs: DEFAULT_OPTIMISTIC_TTL_MS,
  conversations: [],
  /** Member display names by user id, across conversations. */
  names: new Map(),
  /** The open conversation's id, its messages by `messageKey`, and its paging state. */
  open: null,
  messages: new Map(),
  /** When events last changed each message of the view (a send, a delivery, a discard), by
   * `messageKey`: a count of such changes, so a page read can tell what changed while it ran. */
  changedAt: new Map(),
  changes: 0,
  /** Counts the opens of a conversation (and closes): a read started for an earlier open of the
   * conversation shown now (opened again since) does not land in this one's view. */
  visit: 0,
  /** The load of older messages under way: `{ visit, done }` (its open, its promise). */
  loadingOlder: null,
  /** The refresh of the view started last, while it runs: `{ visit, done, stickToBottom,
   * announce }` (its open, its promise, its options); only it renders (see refreshMessages). */
  refreshing: null,
  historyComplete: false,
  /** How far every other member has read the open conversation (a `serverTs`). */
  readByOthers: -Infinity,
  /** Conversations asked to open so far: an open that waited on a read goes on only if no other
   * was asked for meanwhile. */
  openings: 0,
  /** The conversation asked to open last (open, or opening). */
  opening: null,
  /** The open conversation's unread messages when it opened: after `from`, up to `until`. */
  unread: { from: Infinity, until: Infinity },
  /** The manager stopped on an internal error (a bug): only a reload helps. */
  stopped: false,
  /** Whether the status said, when last heard, that writes fail for want of space. */
  storageFull: false,
  /** The manager's counts of sync runs that succeeded and failed (`getStats()`) when last heard,
   * and whether one failed since the last that succeeded (see syncFailed). */
  syncRuns: { completed: 0, failed: 0, lastFailed: false },
  /** Whether the page counts unread messages (the list's counts, the divider in a conversation):
   * not before a first sync has finished, whose read markers come after the messages they cover
   * (a count taken early would be too high). */
  countsUnread: false,
};

// ---------------------------------------------------------------------------------------------
// Start, sign in, sign out

async function boot() {
  registerServiceWorker();
  wireStaticControls();
  const session = await loadSession().catch(() => null);
  if (session) {
    await start(session);
  } else {
    showSignIn();
  }
  setInterval(renderStatus, 15_000);
}

function showSignIn(message) {
  $('chat').hidden = true;
  $('account').hidden = true;
  $('sign-in').hidden = false;
  setStatus('signedOut', 'Signed out');
  if (message) showNotice('start', message);
  const list = $('demo-users');
  list.replaceChildren(...DEMO_USERS.map(([userId, displayName, token]) =>
    el('li', {}, el('button', {
      type: 'button',
      className: 'demo-user',
      textContent: displayName,
      onclick: () => signIn({ userId, displayName, token }),
    }))));
}

async function signIn(session) {
  // One sign-in at a time: a second click would start a second manager beside the first.
  for (const button of document.querySelectorAll('.demo-user')) button.disabled = true;
  // Where storage is blocked, the sign-in lasts as long as the page.
  await saveSession(session).catch((error) => console.warn('the sign-in is not kept for a reload', error));
  hideNotices();
  await start(session);
}

/** Opens the manager for `session` and shows the chat. */
async function start(session) {
  state.session = session;
  const options = managerOptions(session, {
    logLevel: params.get('logLevel') ?? 'info',
    requestPersistentStorage: true,
  });
  for (const name of ['periodicSyncMs', 'optimisticTtlMs', 'maintenanceIntervalMs', 'retentionPerConversation']) {
    const value = Number(params.get(name) || NaN);
    if (value > 0 || (value === 0 && name === 'retentionPerConversation')) options[name] = value;
  }
  state.optimisticTtlMs = options.optimisticTtlMs ?? DEFAULT_OPTIMISTIC_TTL_MS;
  setStatus('initializing', 'Opening…');
  try {
    state.manager = await BackgroundSyncManager.create(options);
  } catch (error) {
    showSignIn(`Could not start: ${error.message}`);
    return;
  }
  state.syncRuns = { completed: 0, failed: 0, lastFailed: false };
  listen(state.manager);
  const { storage, memoryReason } = state.manager.getSyncStatus();
  if (storage === 'memory') {
    const notices = {
      newerVersion: 'A newer version of this app keeps the chat on this device; this page runs an older one and keeps ' +
        'nothing: it works while the page is open. Reload the page to get the newer version.',
      damaged: 'The copy of the chat on this device was damaged and could not be rebuilt: it works while the page ' +
        'is open, and the messages not sent yet that could be saved are sent from it. Keep it open until they are.',
    };
    showNotice('memory', notices[memoryReason] ??
      'This browser keeps no copy of the chat on this device (private mode or blocked storage): ' +
        'it works while the page is open, and messages not sent yet are lost when you close it.');
  }
  $('sign-in').hidden = true;
  $('chat').hidden = false;
  $('account').hidden = false;
  $('account-name').textContent = session.displayName;
  $('conversations-refresh').manager = state.manager;
  $('messages-refresh').manager = state.manager;
  renderStatus();
  await renderConversations();
  const fromHash = decodeURIComponent(location.hash.replace(/^#\/c\//, ''));
  if (fromHash && state.conversations.some((c) => c.id === fromHash)) {
    await openConversation(fromHash);
  } else {
    showPane('list');
  }
}

async function signOut() {
  const manager = state.manager;
  if (!manager) return;
  if (state.stopped) {
    // The manager cannot delete the local data now; after a reload it can.
    showNotice('internal', 'Reload the page before signing out.', { label: 'Reload', onclick: () => location.reload() });
    return;
  }
  // Failed messages too: they wait for Retry or Discard.
  const { pendingOutbox, failedOutbox } = manager.getSyncStatus();
  const pending = pendingOutbox + failedOutbox;
  if (pending > 0 && !confirm(`${pending} message(s) are not sent yet and will be lost. Sign out?`)) {
    return;
  }
  state.manager = null;
  // The sign-in goes first: a service worker's sync meanwhile would write the data back.
  await clearSession().catch((error) => console.warn('forgetting the sign-in failed', error));
  // Deletes the local data; the user's other tabs stop and hear `cleared`.
  await manager.clear().catch((error) => console.warn('clearing the local data failed', error));
  manager.dispose();
  endSession();
}

/** Forgets the signed-out user's page state and shows the sign-in screen (with `message`). */
function endSession(message) {
  state.conversations = [];
  state.names.clear();
  state.countsUnread = false;
  state.storageFull = false;
  clearChatView();
  hideNotices();
  showSignIn(message);
}

/** Empties what the chat showed, so that the next user to sign in on this device sees none of it
 * (on a wide screen the conversation pane stays on screen next to the new user's list). */
function clearChatView() {
  closeConversation();
  $('conversations').replaceChildren();
  $('conversations-refresh').manager = null;
  $('messages-refresh').manager = null;
  $('composer-text').value = '';
  $('account-name').textContent = '';
  $('arrivals').textContent = '';
}

/** Closes the open conversation: the list shows, and the conversation pane is empty. */
function closeConversation() {
  state.openings += 1;
  state.visit += 1;
  state.open = null;
  state.opening = null;
  forgetMessages();
  history.replaceState(null, '', location.pathname + location.search);
  $('messages').replaceChildren();
  $('conversation-title').textContent = 'Pick a conversation';
  $('conversation-members').textContent = '';
  $('history-state').textContent = '';
  $('messages-refresh').removeAttribute('conversation-id');
  $('composer').hidden = true;
  showPane('list');
}

// ---------------------------------------------------------------------------------------------
// The manager's events

function listen(manager) {
  manager.addEventListener('status', () => {
    renderStatus();
    renderStorageNotice(manager.getSyncStatus().storageFull);
    // Unread counts show from the first finished sync on (see renderConversationsNow).
    if (!state.countsUnread && manager.getSyncStatus().lastSyncTime) renderConversations();
  });
  manager.addEventListener('change', (event) => {
    const { conversationIds } = event.detail;
    renderConversations();
    if (state.open && conversationIds.includes(state.open)) refreshMessages();
  });
  manager.addEventListener('message', (event) => {
    const detail = event.detail;
    const conversationId = detail.message?.conversationId ?? detail.conversationId;
    if (detail.type === 'discarded') {
      removeOwnMessage(detail.clientMessageId);
      if (detail.reason === 'expired') {
        showNotice(`expired:${detail.clientMessageId}`,
          `A message could not be delivered for ${durationText(state.optimisticTtlMs)} and was dropped: “${detail.body}”`);
      }
    } else if (detail.message && conversationId === state.open) {
      setFromEvent(messageKey(detail.message), detail.message);
      // The user's own new message scrolls into view; a delivery or failure keeps the place.
      renderMessages({ stickToBottom: detail.type === 'queued' });
    } else if (conversationId === state.open) {
      refreshMessages();
    }
    renderConversations();
  });
  manager.addEventListener('authrequired', () => {
    showNotice('auth', 'The server no longer accepts this sign-in. Sign out and in again.');
  });
  manager.addEventListener('recovered', () => {
    showNotice('recovered', 'The local copy of the chat was damaged and has been rebuilt from the server.');
  });
  manager.addEventListener('cleared', () => {
    // Signed out in another tab: the manager stopped and the local data is gone.
    if (state.manager !== manager) return;
    state.manager = null;
    endSession('You signed out in another tab.');
  });
  manager.addEventListener('internalerror', () => {
    state.stopped = true;
    renderStatus();
    showNotice('internal', 'Something went wrong and the chat stopped syncing. Messages waiting to be sent are kept.',
      { label: 'Reload', onclick: () => location.reload() });
  });
}

// ---------------------------------------------------------------------------------------------
// Status line

function renderStatus() {
  const manager = state.manager;
  if (!manager) return;
  if (state.stopped) {
    setStatus('stopped', 'Stopped after an error: reload the page', navigator.onLine);
    return;
  }
  const status = manager.getSyncStatus();
  const waiting = status.pendingOutbox > 0 ? ` · ${status.pendingOutbox} waiting to send` : '';
  const failed = status.failedOutbox > 0 ? ` · ${status.failedOutbox} not sent` : '';
  // A sync run's error, kept until a run succeeds (the manager clears it then).
  const error = syncFailed(manager, status) ? status.lastError?.message : undefined;
  let text;
  let time = '';
  if (!status.isOnline || status.phase === 'offline') text = 'Offline';
  else if (status.phase === 'syncing') text = 'Syncing…';
  else if (status.phase === 'backoff') text = error ? `Sync failed, retrying: ${error}` : 'Connection problems, retrying';
  else if (status.phase === 'authRequired') text = 'Sign-in needed';
  else if (status.phase === 'initializing') text = 'Starting…';
  else if (error) text = `Sync failed: ${error}`;
  else if (!status.lastSyncTime) text = 'Not synced yet';
  else {
    text = 'Synced';
    time = ` ${relativeTime(Date.parse(status.lastSyncTime))}`;
  }
  setStatus(status.phase, text, status.isOnline, { time, counts: waiting + failed });
}

/** Whether a sync run failed since the last one that succeeded. `lastError` alone does not say:
 * a failed delivery or load of older messages sets it too (they show at the message, and above
 * the messages). The manager counts the runs that succeed and those that fail (`getStats()`):
 * the count that moved last says. */
function syncFailed(manager, status) {
  const { syncsCompleted, syncsFailed } = manager.getStats();
  const runs = state.syncRuns;
  // (Both moved since last heard: the error is still there only if the failure came last, a run
  // that succeeds clears it.)
  if (syncsCompleted !== runs.completed) runs.lastFailed = false;
  if (syncsFailed !== runs.failed && status.lastError) runs.lastFailed = true;
  runs.completed = syncsCompleted;
  runs.failed = syncsFailed;
  return runs.lastFailed;
}

/** The out-of-storage notice shows when writes start failing for want of space, and goes once a
 * write succeeds (the manager removed old history to make room, or the user freed some). */
function renderStorageNotice(full) {
  if (full === state.storageFull) return;
  state.storageFull = full;
  if (full) showNotice('storage', 'This device is out of storage for the chat: old history is being removed to make room.');
  else hideNotice('storage');
}

/** Shows the status line: `text` (the state) and `counts` are live regions, written only when
 * they change (a screen reader reads a region out again when it is rewritten); `time` (since the
 * last sync) is not one: it changes with the clock alone. */
function setStatus(phase, text, online = navigator.onLine, { time = '', counts = '' } = {}) {
  const box = $('status');
  box.dataset.phase = phase;
  box.dataset.online = String(online);
  for (const [id, value] of [['status-state', text], ['status-time', time], ['status-counts', counts]]) {
    if ($(id).textContent !== value) $(id).textContent = value;
  }
}

/** Shows a notice above the chat: `text` with a Dismiss button, or with `action` (`{ label,
 * onclick }`) instead. Notices stack, one per `key`: a notice replaces the one of its key only. */
function showNotice(key, text, action = { label: 'Dismiss', onclick: () => hideNotice(key) }) {
  const notice = el('div', { className: 'notice', dataset: { key } },
    el('span', { textContent: text }),
    el('button', { type: 'button', className: 'link-button', textContent: action.label, onclick: action.onclick }));
  const shown = noticeOf(key);
  if (shown) shown.replaceWith(notice);
  else $('banner').append(notice);
  $('banner').hidden = false;
}

function hideNotice(key) {
  noticeOf(key)?.remove();
  $('banner').hidden = !$('banner').hasChildNodes();
}

/** Hides every notice (signing in or out: they were about the previous session). */
function hideNotices() {
  $('banner').replaceChildren();
  $('banner').hidden = true;
}

function noticeOf(key) {
  return [...$('banner').children].find((notice) => notice.dataset.key === key);
}

// ---------------------------------------------------------------------------------------------
// Conversation list

/** The list's render in progress, and whether another was asked for while it ran. */
let conversationsRender = null;
let conversationsStale = false;

/** Re-renders the list; calls made while one runs are folded into one more render after it.
 * Resolves once the list shows the state as of the call. */
function renderConversations() {
  if (conversationsRender) {
    conversationsStale = true;
    return conversationsRender;
  }
  conversationsRender = (async () => {
    try {
      do {
        conversationsStale = false;
        await renderConversationsNow();
      } while (conversationsStale);
    } finally {
      conversationsRender = null;
    }
  })();
  return conversationsRender;
}

async function renderConversationsNow() {
  const manager = state.manager;
  if (!manager) return;
  let conversations;
  try {
    conversations = await manager.listConversations();
  } catch (error) {
    if (state.manager === manager) showNotice('list', `Could not read the conversations: ${error.message}`);
    return;
  }
  // Signed out meanwhile: nothing of this user's goes on screen or into the page's state.
  if (state.manager !== manager) return;
  hideNotice('list'); // (read again: what an earlier read failed on is over)
  state.conversations = conversations;
  if (state.open && !conversations.some((c) => c.id === state.open)) {
    // Only a reset takes a conversation away: the server's data was replaced (or the local
    // database rebuilt), and this conversation is not in what the cache holds now.
    closeConversation();
    showNotice('gone', 'The conversation you had open is no longer on the server.');
  }
  for (const conversation of conversations) {
    for (const member of conversation.members) state.names.set(member.id, member.displayName);
  }
  // Unread counts are null until a first sync has finished.
  state.countsUnread = conversations.length > 0 &&
    conversations.every((conversation) => conversation.unreadCount !== null);
  const list = $('conversations');
  patchChildren(list, conversations.length > 0
    ? conversations.map((conversation) => conversationRow(conversation, manager))
    : [el('li', { className: 'empty', dataset: { key: 'empty' }, textContent: 'No conversations yet. Pull down to sync.' })]);
  list.dataset.counting = String(state.countsUnread);
  await offerUnsendable(manager);
}

/** A row of the list. The conversation on screen counts as read: it is marked read up to its
 * newest message. */
function conversationRow(conversation, manager) {
  const last = conversation.lastMessage;
  let unread = conversation.unreadCount ?? 0;
  if (unread > 0 && onScreen(conversation.id)) {
    // The newest message, or (when it is this user's, not sent yet) the view's newest sent one.
    const newest = last?.id ? last : newestSent();
    if (newest) manager.markRead(newest).catch((error) => console.warn('marking read failed', error));
    unread = 0;
  }
  return conversationItem({
    conversation,
    last,
    senderName: last ? displayName(last.senderId) : '',
    unread,
    selected: conversation.id === state.open,
  });
}

/** The newest message of the open conversation's view that the server has. */
function newestSent() {
  return [...state.messages.values()]
    .filter((message) => message.id !== null)
    .reduce((a, b) => (a && a.serverTs >= b.serverTs ? a : b), null);
}

/** A failed message whose conversation is gone (the server's data was replaced) shows in no
 * conversation: a notice shows it, for the user to discard. */
async function offerUnsendable(manager) {
  const outbox = manager.getSyncStatus().failedOutbox === 0 ? [] : await manager.listOutbox().catch(() => []);
  if (state.manager !== manager) return;
  const orphan = outbox.find((message) => message.status === 'failed' &&
    !state.conversations.some((conversation) => conversation.id === message.conversationId));
  if (!orphan) {
    hideNotice('unsendable');
    return;
  }
  showNotice('unsendable', `A message to a conversation that is no longer on the server cannot be sent: “${orphan.body}”`, {
    label: 'Discard',
    onclick: () => manager.discardMessage(orphan.clientMessageId).then(() => hideNotice('unsendable'),
      (error) => showNotice('unsendable', `Could not discard the message: ${error.message}`)),
  });
}

function displayName(userId) {
  if (userId === state.session?.userId) return 'You';
  return state.names.get(userId) ?? userId;
}

// ---------------------------------------------------------------------------------------------
// Conversation view

async function openConversation(id) {
  const conversation = state.conversations.find((c) => c.id === id);
  if (!conversation) return;
  // Picked again (a double click): it is open, or opening; opened again, it would count its
  // messages read and lose the unread divider.
  if (state.opening === id) {
    showPane('conversation');
    return;
  }
  state.opening = id;
  // How far this user had read it, for the divider: read before it counts as on screen, which
  // marks it read.
  const opening = ++state.openings;
  const readUpTo = state.countsUnread ? await ownReadPosition(id) : Infinity;
  if (opening !== state.openings) return; // another conversation was picked meanwhile
  state.open = id;
  const visit = ++state.visit;
  forgetMessages();
  state.historyComplete = false;
  state.readByOthers = -Infinity;
  state.unread = { from: readUpTo, until: Infinity };
  history.replaceState(null, '', `#/c/${encodeURIComponent(id)}`);
  $('conversation-title').textContent = conversation.title;
  $('conversation-members').textContent = conversation.members.map((m) => m.displayName).join(', ');
  $('messages-refresh').setAttribute('conversation-id', id);
  $('composer').hidden = false;
  $('history-state').textContent = '';
  showPane('conversation');
  $('messages').replaceChildren();
  await refreshMessages({ stickToBottom: true, announce: false });
  if (state.visit !== visit) return;
  // More unread messages than a page: older pages load until the first of them (a few at most).
  for (let pages = 0; pages < 4 && unreadGoOnAbove(); pages += 1) {
    await loadOlder();
    if (state.visit !== visit) return;
  }
  // Messages arriving from now on are read as they come: the divider keeps its count.
  state.unread.until = Math.max(...[...state.messages.values()].map((m) => m.serverTs ?? -Infinity));
  showFirstUnread();
  renderConversations();
  $('composer-text').focus({ preventScroll: true });
}

/** The `serverTs` this user has read conversation `id` up to (-Infinity: nothing; Infinity: the
 * markers could not be read, so nothing counts as unread). */
async function ownReadPosition(id) {
  const markers = await state.manager?.listReadMarkers(id).catch(() => null);
  if (!markers) return Infinity;
  return markers.find((marker) => marker.userId === state.session.userId)?.lastReadServerTs ?? -Infinity;
}

/** Loads the newest page into the view (new, changed and deleted messages), and the older pages
 * the view holds (scrolled back to), which edits and deletions change too. Refreshes overlap (a
 * change, a pull-to-refresh): only the one started last renders (it read last), also for those
 * started before it that still run; they resolve once it has rendered. */
function refreshMessages({ stickToBottom = false, announce = true } = {}) {
  if (!state.open || !state.manager) return Promise.resolve(); // (none while signing out)
  // It takes the options of one it overtakes along (the open's keeps to the bottom, announces
  // nothing).
  const running = state.refreshing?.visit === state.visit ? state.refreshing : null;
  const refresh = {
    visit: state.visit,
    stickToBottom: stickToBottom || (running?.stickToBottom ?? false),
    announce: announce && (running?.announce ?? true),
  };
  const done = refreshOf(state.open, refresh).finally(() => {
    if (state.refreshing === refresh) state.refreshing = null;
  });
  refresh.done = done;
  state.refreshing = refresh;
  return done;
}

/** Refreshes the view of conversation `id` for `refresh` (see refreshMessages); an earlier open's
 * (the conversation was left, or opened again) or an overtaken refresh drops what it read. */
async function refreshOf(id, refresh) {
  const { visit } = refresh;
  // Overtaken, it resolves with the later refresh (at once, in a later open).
  const overtaken = () => state.visit !== visit || state.refreshing !== refresh;
  const later = () => (state.visit === visit ? state.refreshing?.done : undefined);
  // The page read is as of now: what events change while it runs (a message just sent, one
  // delivered) is newer than the page, and stays as they left it.
  const since = state.changes;
  const older = (key) => (state.changedAt.get(key) ?? 0) <= since;
  // Down to the oldest message the view holds now (a load of older ones meanwhile adds below).
  const oldestShown = oldestInView();
  let latest;
  let markers;
  /** The pages read, and how far down they reach (a `sortTs`; -Infinity: to the end). */
  const read = [];
  let from;
  try {
    [latest, markers] = await Promise.all([
      state.manager.listMessages(id, { limit: PAGE }),
      state.manager.listReadMarkers(id).catch(() => []),
    ]);
    read.push(...latest);
    from = latest.length === PAGE ? latest[0].sortTs : -Infinity;
    while (from > oldestShown && !overtaken()) {
      const page = await state.manager.listMessages(id, { limit: PAGE, before: from });
      read.push(...page);
      from = page.length === PAGE ? page[0].sortTs : -Infinity;
    }
  } catch (error) {
    if (overtaken()) return later();
    showNotice('messages', `Could not read the messages: ${error.message}`);
    return;
  }
  if (overtaken()) return later();
  hideNotice('messages');
  // Read, as in "read by everyone else": the least read of the other members.
  const others = (state.conversations.find((c) => c.id === id)?.members ?? [])
    .filter((member) => member.id !== state.session.userId);
  state.readByOthers = others.length === 0 ? -Infinity : Math.min(...others.map((member) =>
    markers.find((marker) => marker.userId === member.id)?.lastReadServerTs ?? -Infinity));
  // Messages in the pages' range that are gone were deleted (or discarded).
  const present = new Set(read.map(messageKey));
  for (const [key, message] of state.messages) {
    if (message.sortTs >= from && !present.has(key) && older(key)) state.messages.delete(key);
  }
  // Screen readers hear what arrived from others (not the whole list: it is no live region).
  const arrived = latest.filter((message) => !state.messages.has(messageKey(message)) &&
    message.senderId !== state.session.userId && !message.deleted);
  if (refresh.announce && arrived.length > 0) {
    const last = arrived.at(-1);
    $('arrivals').textContent = `${displayName(last.senderId)}: ${last.body}`;
  }
  for (const message of read) {
    if (older(messageKey(message))) state.messages.set(messageKey(message), message);
  }
  renderMessages({ stickToBottom: refresh.stickToBottom });
  if (latest.length < PAGE) {
    await showShortPage(id, visit);
  } else if (!Number.isFinite(oldestShown)) {
    // The view's first page, whole (Try again after the first read came back empty): the line
    // above it says nothing yet.
    $('history-state').textContent = '';
  }
}

/** After a page came back short: the beginning only when the manager says the history is
 * complete (back-fill is best effort: a page is short too where the cache ends and loading older
 * messages failed, or waits for the network); otherwise a way to try again. */
async function showShortPage(id, visit) {
  const manager = state.manager;
  const complete = await manager?.isHistoryComplete(id).catch(() => false);
  if (state.visit !== visit || state.manager !== manager) return;
  state.historyComplete = complete;
  const line = $('history-state');
  if (complete) {
    line.textContent = BEGINNING;
  } else if (!manager.getSyncStatus().isOnline) {
    line.textContent = 'Older messages load when you are back online.';
  } else {
    line.replaceChildren('Could not load older messages. ', el('button', {
      type: 'button', className: 'link-button', textContent: 'Try again', onclick: () => loadAgain(),
    }));
  }
}

/** Try again, after a page came back short: the page before the oldest message in the view, or
 * with none in it (the conversation's first read came back empty), its newest page. */
function loadAgain() {
  return Number.isFinite(oldestInView()) ? loadOlder() : refreshMessages();
}

/** The `sortTs` of the oldest message in the view (Infinity: none). */
function oldestInView() {
  return [...state.messages.values()].reduce((min, m) => Math.min(min, m.sortTs), Infinity);
}

/** Scrolling near the top loads the page before the oldest shown (back-filled from the server
 * when the cache has no more). */
function loadOlder() {
  // One load at a time per open; a load still running for an earlier one does not block (nor
  // land: see loadOlderOf).
  if (state.loadingOlder?.visit === state.visit) return state.loadingOlder.done;
  if (state.historyComplete || !state.open) return Promise.resolve();
  const oldest = oldestInView();
  if (!Number.isFinite(oldest)) return Promise.resolve();
  const visit = state.visit;
  const done = loadOlderOf(state.open, oldest, visit).finally(() => {
    if (state.loadingOlder?.done === done) state.loadingOlder = null;
  });
  state.loadingOlder = { visit, done };
  return done;
}

/** Loads the page of conversation `id` before `oldest` (a `sortTs`) into the view of open
 * `visit`: not into a later open's (of this conversation too), whose view starts anew. */
async function loadOlderOf(id, oldest, visit) {
  $('history-state').textContent = 'Loading older messages…';
  try {
    const older = await state.manager.listMessages(id, { limit: PAGE, before: oldest });
    if (state.visit !== visit) return;
    for (const message of older) state.messages.set(messageKey(message), message);
    renderMessages({ keepPosition: true });
    if (older.length < PAGE) return await showShortPage(id, visit);
  } catch (error) {
    if (state.visit === visit) $('history-state').textContent = `Could not load older messages: ${error.message}`;
    return;
  }
  $('history-state').textContent = '';
}

function renderMessages({ stickToBottom = false, keepPosition = false } = {}) {
  const scroller = $('messages-refresh');
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  const heightBefore = scroller.scrollHeight;
  const sorted = [...state.messages.values()].sort((a, b) => a.sortTs - b.sortTs);
  // Replying reads what came before (as the list counts): unread messages come after this user's
  // newest one (one not sent yet leaves none).
  const mine = sorted.filter((message) => message.senderId === state.session.userId);
  const replied = Math.max(-Infinity, ...mine.map((message) => message.serverTs ?? Infinity));
  const unread = sorted.filter((message) => isUnread(message) && message.serverTs > replied);
  const items = [];
  let day = null;
  // A day can start twice: a message not sent shows its compose time but sorts after the server's.
  const dividers = new Map();
  for (const message of sorted) {
    const time = messageTime(message);
    if (dayNumber(time) !== day) {
      day = dayNumber(time);
      dividers.set(day, (dividers.get(day) ?? 0) + 1);
      items.push(dayDivider(time, dividers.get(day)));
    }
    if (message === unread[0]) items.push(unreadDivider(unread.length));
    items.push(messageItem(message, {
      mine: message.senderId === state.session.userId,
      senderName: displayName(message.senderId),
      read: message.serverTs !== null && message.serverTs <= state.readByOthers,
    }));
  }
  patchChildren($('messages'), items);
  if (state.historyComplete) $('history-state').textContent = BEGINNING;
  if (keepPosition) {
    scroller.scrollTop += scroller.scrollHeight - heightBefore;
  } else if (stickToBottom || atBottom) {
    scroller.scrollTop = scroller.scrollHeight;
  }
}

/** Whether `message` was unread when its conversation opened (another member's, after this
 * user's read marker). */
function isUnread(message) {
  return message.senderId !== state.session.userId && message.serverTs !== null &&
    message.serverTs > state.unread.from && message.serverTs <= state.unread.until;
}

/** Whether unread messages may go on above the oldest one loaded: it is unread, and no message
 * of this user's is loaded (replying reads what came before). */
function unreadGoOnAbove() {
  if (state.historyComplete) return false;
  const loaded = [...state.messages.values()].filter((message) => message.serverTs !== null);
  if (loaded.some((message) => message.senderId === state.session.userId)) return false;
  const oldest = loaded.reduce((min, message) => (min && min.serverTs <= message.serverTs ? min : message), null);
  return oldest !== null && isUnread(oldest);
}

/** More unread messages than fit: the view starts at the first of them, not at the bottom. */
function showFirstUnread() {
  const divider = document.querySelector('#messages .unread-divider');
  const scroller = $('messages-refresh');
  if (divider && divider.getBoundingClientRect().top < scroller.getBoundingClientRect().top) {
    divider.scrollIntoView({ block: 'start' });
  }
}

function removeOwnMessage(clientMessageId) {
  setFromEvent(messageKey({ senderId: state.session.userId, clientMessageId }), null);
  renderMessages();
}

/** Empties the view's messages and what events changed of them. */
function forgetMessages() {
  state.messages.clear();
  state.changedAt.clear();
}

/** Sets (or, with null, removes) a message of the view as an event tells it. */
function setFromEvent(key, message) {
  if (message) state.messages.set(key, message);
  else state.messages.delete(key);
  state.changedAt.set(key, ++state.changes);
}

async function send(event) {
  event.preventDefault();
  const input = $('composer-text');
  const text = input.value.trim();
  if (!text || !state.open) return;
  // Emptied at once: a second Enter while this one is stored must not send the text again.
  input.value = '';
  autosize(input);
  try {
    await state.manager.sendMessage(state.open, text);
  } catch (error) {
    if (!input.value) {
      input.value = text;
      autosize(input);
    }
    showNotice('send', `Not sent: ${error.message}`);
    return;
  }
  // Offline: ask the service worker to deliver it even if this page is closed first.
  if (!state.manager.getSyncStatus().isOnline) BackgroundSyncManager.registerBackgroundSync();
}

async function onMessageAction(event) {
  const button = event.target.closest('button[data-action]');
  if (!button || button.disabled) return;
  const id = button.closest('.message').dataset.clientMessageId;
  button.disabled = true; // one retry or discard per click sequence
  try {
    if (button.dataset.action === 'retry') await state.manager.retryMessage(id);
    else await state.manager.discardMessage(id);
    // The buttons go with the failure (the message, on Discard): the focus goes on to the
    // composer, unless the user took it elsewhere meanwhile.
    const focus = document.activeElement;
    if (!focus || focus === document.body || focus === button || !focus.isConnected) {
      $('composer-text').focus({ preventScroll: true });
    }
  } catch (error) {
    // `invalidInput`: no longer failed (retried, discarded or sent from another tab), or its fate
    // is being stored (a second click, maintenance meanwhile); the message's event, or the change
    // the other tab's write brings, shows what became of it.
    if (error.code !== 'invalidInput') showNotice('send', error.message);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Layout and controls

/** Phones show one pane at a time: `list` or `conversation`. */
function showPane(pane) {
  $('chat').dataset.pane = pane;
}

/** Whether the conversation `id` is open and on screen (on a phone the list may cover it). */
function onScreen(id) {
  return id === state.open && !document.hidden &&
    ($('chat').dataset.pane === 'conversation' || matchMedia('(min-width: 760px)').matches);
}

function autosize(textarea) {
  textarea.style.height = 'auto';
  textarea.style.height = `${Math.min(textarea.scrollHeight, 160)}px`;
}

function wireStaticControls() {
  $('sign-out').addEventListener('click', signOut);
  $('back').addEventListener('click', () => {
    showPane('list');
    history.replaceState(null, '', '#');
    // The focus goes back to where the user left the list: the conversation they had open.
    const row = [...document.querySelectorAll('#conversations button.conversation')]
      .find((button) => button.dataset.id === state.open);
    row?.focus();
  });
  $('conversations').addEventListener('click', (event) => {
    const button = event.target.closest('button.conversation');
    if (button) openConversation(button.dataset.id);
  });
  $('messages').addEventListener('click', onMessageAction);
  $('messages-refresh').addEventListener('scroll', () => {
    if ($('messages-refresh').scrollTop < 200) loadOlder();
  }, { passive: true });
  $('composer').addEventListener('submit', send);
  const input = $('composer-text');
  input.addEventListener('input', () => autosize(input));
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) send(event);
  });
  // Pull-to-refresh on the conversation only syncs it; show what it brought.
  $('messages-refresh').addEventListener('sync-end', () => refreshMessages());
  $('conversations-refresh').addEventListener('sync-end', () => renderConversations());
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && state.open) renderConversations();
  });
}

// ---------------------------------------------------------------------------------------------
// Service worker: offline app shell and background delivery

async function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  try {
    await navigator.serviceWorker.register('sw.js', { type: 'module', updateViaCache: 'none' });
    // (Periodic Background Sync needs an active worker.)
    const registration = await navigator.serviceWorker.ready;
    if ('periodicSync' in registration) {
      // Granted for installed PWAs with enough engagement; otherwise this throws and we rely on
      // the page's own periodic sync.
      await registration.periodicSync.register('chat-sync-periodic', { minInterval: 60 * 60 * 1000 })
        .catch(() => {});
    }
  } catch (error) {
    console.warn('the service worker could not be registered; the app works online only', error);
  }
}

boot();
