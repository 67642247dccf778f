/** Options of `BackgroundSyncManager.create`. Times are milliseconds. */
export interface SyncOptions {
  /** The sync server's base URL, e.g. `https://chat.example.com`. */
  serverUrl: string;
  /** The bearer token; or give `getToken`. */
  token?: string;
  /** Called for a token at start (without `token`) and whenever the server refuses one. */
  getToken?: () => Promise<string>;
  /** The signed-in user's id; without it the first start asks the server (`GET /v1/me`). */
  userId?: string;
  /** Periodic sync while online (default 300000 = 5 min; from 1000 to 2147483647, about 24.8
   * days). */
  periodicSyncMs?: number;
  /** Maintenance interval (default 86400000 = 24 h; from 1000 to 2147483647). */
  maintenanceIntervalMs?: number;
  /** Undelivered messages older than this become failed (default 604800000 = 7 days; from 1000
   * to 10 years). */
  optimisticTtlMs?: number;
  /** Changes in a sync's first page (default 100); the sync's later pages, which only a backlog
   * has, ask for 500 (the protocol's most). Each feed request of a sync that times out halves
   * the sync's pages from then on (to a sixteenth), for links too slow for large pages. */
  pageSize?: number;
  /** Most requests at once (default 2). */
  maxConcurrentRequests?: number;
  /** Server messages kept per conversation by maintenance (default 5000). */
  retentionPerConversation?: number;
  /** Console log level (default `warn`). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error' | 'off';
  /** Ask the browser to keep the data under storage pressure (pages only). */
  requestPersistentStorage?: boolean;
}

/** The stable `code` of errors the manager rejects with. */
export type SyncErrorCode =
  | 'offline' | 'auth' | 'server' | 'network' | 'quota' | 'storage' | 'invalidInput' | 'disposed'
  /** A bug stopped the manager; reloading the page starts it again (queued messages are kept). */
  | 'internal'
  /** Not in a browser page or worker (Node, during server-side rendering): create the manager in
   * the browser. */
  | 'unsupported';

/** An `Error` from the manager. */
export interface SyncError extends Error {
  code: SyncErrorCode;
  /** Whether trying again later may succeed (sync errors only). */
  retryable?: boolean;
}

/** `getSyncStatus()`. */
export interface SyncStatus {
  isInitialized: boolean;
  /** A sync is in progress. */
  isRunning: boolean;
  isOnline: boolean;
  /** When the last sync finished, by this tab or (in a follower tab) the tab that syncs; ISO
   * 8601, or null before the first sync. */
  lastSyncTime: string | null;
  lastError: { code: SyncErrorCode; message: string } | null;
  /** Messages waiting to be delivered. */
  pendingOutbox: number;
  /** Messages that failed and wait for `retryMessage` or `discardMessage`. */
  failedOutbox: number;
  /** Read markers (`markRead`) the server does not have yet, on the tab that syncs (`isLeader`);
   * 0 on the others, which hand theirs to that tab. */
  pendingReadMarkers: number;
  /** `follower`: another tab of this app syncs for this one. */
  phase: 'initializing' | 'stopped' | 'follower' | 'offline' | 'authRequired' | 'syncing' | 'backoff' | 'idle';
  /** Whether this tab syncs (one tab at a time does). */
  isLeader: boolean;
  lastTrigger: 'start' | 'periodic' | 'resume' | 'online' | 'force' | 'conversation' | 'retry' | null;
  /** When the next sync is planned (ms since the epoch), if one is. */
  nextSyncAt: number | null;
  storageFull: boolean;
  /** `memory` where there is no database to use: nothing survives a reload, so tell the user
   * (`memoryReason` says why). */
  storage: 'indexeddb' | 'memory';
  /** Why `storage` is `memory`: `unavailable`, IndexedDB is not available here (some private
   * modes, storage the user blocked); `newerVersion`, a newer version of the app wrote the
   * database and keeps it as it is (reloading gets that version); `damaged`, the database could
   * not be read and rebuilding it failed (`recovered` says why): the messages not sent yet that
   * could be read from it are kept in memory and delivered by this tab, so ask the user to keep
   * it open until `pendingOutbox` is 0 (a reload tries the database again). Null with
   * `indexeddb`. */
  memoryReason: 'unavailable' | 'newerVersion' | 'damaged' | null;
  /** The answer to `requestPersistentStorage`, null when not asked or not answered yet (the
   * browser may ask the user; `create` does not wait for it). */
  persistentStorage: boolean | null;
  /** Why the local database was rebuilt at open, if it was (or, with `memoryReason`
   * `damaged`, why it could not be used and why rebuilding it failed). */
  recovered: string | null;
}

/** `getStats()`. */
export interface SyncStats {
  syncsCompleted: number;
  syncsFailed: number;
  messagesPulled: number;
  messagesPushed: number;
  bytesReceived: number;
  retries: number;
  lastSyncDurationMs: number | null;
  meanSyncDurationMs: number | null;
  p95SyncDurationMs: number | null;
  maintenanceRuns: number;
  messagesEvicted: number;
}

/** What `BackgroundSyncManager.syncOnce` did. */
export interface SyncOnceResult {
  /** The sync finished without error. */
  synced: boolean;
  /** Messages still waiting (offline, or not delivered within the event's time). */
  pendingOutbox: number;
  /** Read markers still waiting, likewise. */
  pendingReadMarkers: number;
}

/** Options of `listMessages`. */
export interface ListMessagesOptions {
  /** How many messages, 1 to 500 (default 50). */
  limit?: number;
  /** Only messages before this `sortTs` (to page back). */
  before?: number;
}

/** What a sync command did. */
export interface SyncResult {
  /** Messages written to the local cache. */
  changes: number;
  /** For history back-fill: whether older messages remain. */
  hasMore: boolean;
}

export interface ChatUser {
  id: string;
  displayName: string;
}

/** A conversation as `listConversations` lists it. */
export interface Conversation {
  id: string;
  title: string;
  members: ChatUser[];
  createdTs: number;
  updatedTs: number;
  /** The newest message `listMessages` shows (a pending one included); null when none. */
  lastMessage: ChatMessage | null;
  /** Messages of other members after this user's read marker (set on any device, or here with
   * `markRead`) and after this user's own newest message (a reply, even one not sent yet, reads
   * what came before), deleted ones left out, among the cached messages; counted up to 100 (100
   * means 100 or more: a badge shows 99+), so listing costs the same however many are unread.
   * `null` until a first sync has finished: it brings the read markers after the messages they
   * cover, so an earlier count would be too high. */
  unreadCount: number | null;
}

/** A message in the local cache: from the server, or composed here (`pending` / `failed`). */
export interface ChatMessage {
  conversationId: string;
  clientMessageId: string;
  senderId: string;
  body: string;
  status: 'pending' | 'sent' | 'failed';
  failure: { code: string; message: string } | null;
  /** The server's id, once sent. */
  id: string | null;
  serverTs: number | null;
  updatedTs: number | null;
  edited: boolean;
  deleted: boolean;
  /** Order within the conversation; pass as `before` to page back. */
  sortTs: number;
  composedAt: number | null;
}

/** How far a member has read a conversation (`listReadMarkers`). */
export interface ReadMarker {
  conversationId: string;
  userId: string;
  /** The newest message the member has read, and its `serverTs`. */
  lastReadMessageId: string;
  lastReadServerTs: number;
  /** When the server stored it; null while pending. */
  updatedTs: number | null;
  /** This user's marker, set here with `markRead` and not on the server yet. */
  pending: boolean;
}

/** `detail` of `change`: the conversations whose data (messages, read markers) changed; after the
 * server refused the cursor (its database was replaced), every conversation the cache emptied;
 * after an eviction (maintenance, or a write that found storage full), the conversations it took
 * old messages from. */
export interface ChangeDetail {
  conversationIds: string[];
  messages: number;
}

/** `detail` of `message`: one message's delivery changed. */
export type MessageDetail =
  | { type: 'queued' | 'sent'; message: ChatMessage }
  | { type: 'failed'; clientMessageId: string; conversationId: string; failure: { code: string; message: string }; retryable: boolean }
  | { type: 'discarded'; clientMessageId: string; conversationId: string; body: string; reason: 'discarded' | 'expired' };

/** `detail` of `status`: the status as it changed, what `getSyncStatus()` gives then. */
export type StatusDetail = SyncStatus;

/** `detail` of `maintenance`: what a maintenance run removed. Sizes in bytes. */
export interface MaintenanceDetail {
  evictedMessages: number;
  compactedTombstones: number;
  /** The origin's storage use before and after (`navigator.storage.estimate()`), where known. */
  storageUsedBefore: number | null;
  storageUsedAfter: number | null;
}

/** The manager's events and their `detail`s. */
export interface SyncEventMap {
  change: CustomEvent<ChangeDetail>;
  message: CustomEvent<MessageDetail>;
  status: CustomEvent<StatusDetail>;
  /** A message failed (the same `detail` as its `message` event). */
  error: CustomEvent<Extract<MessageDetail, { type: 'failed' }>>;
  /** The server refused the token: call `setToken`. */
  authrequired: CustomEvent<null>;
  storagefull: CustomEvent<null>;
  /** The local database was rebuilt at open (or could not be: `memoryReason` is `damaged`);
   * told to the first listener. */
  recovered: CustomEvent<{ reason: string }>;
  maintenance: CustomEvent<MaintenanceDetail>;
  /** Another tab called `clear()` (a logout): this manager has stopped and the user's local data
   * is deleted. Show the signed-out state. */
  cleared: CustomEvent<null>;
  /** A bug stopped the manager: every call now fails with code `internal`. Offer a reload. */
  internalerror: CustomEvent<{ message: string }>;
}

// The class's event methods (src/js_api/mod.rs leaves them out of the generated class), typed
// per event: `sync.addEventListener('change', (e) => rerender(e.detail.conversationIds))`.
export interface BackgroundSyncManager {
  /** Listens for one of the manager's events (`CustomEvent`s; the data is in `detail`). */
  addEventListener<K extends keyof SyncEventMap>(type: K, listener: (event: SyncEventMap[K]) => void, options?: boolean | AddEventListenerOptions): void;
  /** Stops listening. */
  removeEventListener<K extends keyof SyncEventMap>(type: K, listener: (event: SyncEventMap[K]) => void, options?: boolean | EventListenerOptions): void;
}

declare global {
  // The class has a `[Symbol.dispose]()` method (for `using`); this lets apps whose `lib` is
  // older than ES2025 (`esnext.disposable`) type-check it. The same declaration as the one lib has.
  interface SymbolConstructor {
    readonly dispose: unique symbol;
  }
}
