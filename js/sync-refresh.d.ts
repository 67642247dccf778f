// Types of `chat-sync/sync-refresh`: the `<sync-refresh>` custom element.

/** The error shape the element reads: an `Error` with the manager's stable `code`. */
export interface SyncRefreshError extends Error {
  code?: string;
}

/** What `getSyncStatus()` returns, as far as the element reads it (a chat-sync `SyncStatus` fits). */
export interface SyncStatusLike {
  isRunning?: boolean;
  isOnline?: boolean;
  /** ISO 8601, or null before the first sync. */
  lastSyncTime?: string | null;
  lastError?: { code: string; message: string } | null;
  phase?: string;
}

/**
 * What the element needs of a sync manager. A chat-sync `BackgroundSyncManager` has this shape;
 * the element does not import the wasm module, so any object with these members works.
 */
export interface SyncManagerLike<Result = unknown> {
  forceSync(): Promise<Result>;
  syncConversation(conversationId: string): Promise<Result>;
  getSyncStatus(): SyncStatusLike;
  addEventListener(type: 'status', listener: (event: Event) => void): void;
  removeEventListener(type: 'status', listener: (event: Event) => void): void;
}

/** How a refresh ended: `detail` of `sync-end` and what `refresh()` resolves with. */
export type SyncOutcome<Result = unknown> =
  | { result: Result; error?: never }
  | { /** Usually a `SyncRefreshError`; whatever the manager rejected with. */ error: unknown; result?: never };

/** `detail` of `sync-start`. */
export interface SyncStartDetail {
  /** The `conversation-id` being synced, or null for a full sync. */
  conversationId: string | null;
}

/**
 * `<sync-refresh>`: pull-to-refresh, a refresh button and an optional sync status line around a
 * list (its light-DOM children, in the default slot). The element is a scroll container; give it
 * a height, or let the list inside (or the page) scroll. A pull starts only when everything
 * between the pointer and the page is scrolled to its top.
 *
 * Attributes: `threshold` (px of indicator travel to refresh, default 64), `conversation-id`
 * (sync that conversation instead of everything), `show-sync-status` (show the status line).
 *
 * Events (bubbling, composed `CustomEvent`s): `sync-start` (`{ conversationId }`) and `sync-end`
 * (`{ result }` or `{ error }`). While a sync runs the element has `aria-busy="true"`; a polite
 * live region announces how it ended. Manager errors never reject anywhere: they show in the
 * status line (`code: 'offline'` reads "Offline") and in `sync-end`.
 *
 * Parts: `header`, `status`, `button`, `indicator`, `arrow`, `spinner`.
 * Custom properties: `--sync-refresh-accent`, `--sync-refresh-surface`,
 * `--sync-refresh-header-background`, `--sync-refresh-status-color`,
 * `--sync-refresh-indicator-size`, `--sync-refresh-duration`.
 */
export declare class SyncRefreshElement extends HTMLElement {
  static readonly observedAttributes: string[];
  /** The sync manager (`BackgroundSyncManager` or the same shape); its `status` events are followed while connected. */
  manager: SyncManagerLike | null;
  /** Indicator travel in px that a pull must reach (attribute `threshold`, default 64). */
  threshold: number;
  /** The conversation to sync (attribute `conversation-id`); null syncs everything. */
  conversationId: string | null;
  /** Whether the status line shows (attribute `show-sync-status`). */
  showSyncStatus: boolean;
  /** Whether a refresh started by this element is running. */
  readonly syncing: boolean;
  /**
   * Syncs as a completed pull does. While one runs, returns the same promise. Never rejects:
   * resolves with `{ result }` or `{ error }`.
   */
  refresh(): Promise<SyncOutcome>;
  connectedCallback(): void;
  disconnectedCallback(): void;
  attributeChangedCallback(name: string, oldValue: string | null, newValue: string | null): void;

  addEventListener<K extends keyof SyncRefreshEventMap>(
    type: K,
    listener: (this: SyncRefreshElement, event: SyncRefreshEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof SyncRefreshEventMap>(
    type: K,
    listener: (this: SyncRefreshElement, event: SyncRefreshEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | EventListenerOptions,
  ): void;
}

/** The element's events, with the HTMLElement ones. */
export interface SyncRefreshEventMap extends HTMLElementEventMap {
  'sync-start': CustomEvent<SyncStartDetail>;
  'sync-end': CustomEvent<SyncOutcome>;
}

declare global {
  interface HTMLElementTagNameMap {
    'sync-refresh': SyncRefreshElement;
  }
  interface HTMLElementEventMap {
    'sync-start': CustomEvent<SyncStartDetail>;
    'sync-end': CustomEvent<SyncOutcome>;
  }
  /** The events bubble and are composed: a listener on the document hears them too. */
  interface DocumentEventMap {
    'sync-start': CustomEvent<SyncStartDetail>;
    'sync-end': CustomEvent<SyncOutcome>;
  }
}
