// <sync-refresh>: pull-to-refresh, a refresh button and a sync status line for any list, driven
// by a chat-sync `BackgroundSyncManager` (or anything with its shape). No dependencies.
//
//     import 'chat-sync/sync-refresh';
//     <sync-refresh show-sync-status style="height: 100vh">
//       <ul>…the conversation list…</ul>
//     </sync-refresh>
//     document.querySelector('sync-refresh').manager = sync;
//
// Structure: the element is a block scroll container (`overflow-y: auto`) with the list as its
// light-DOM child in the default slot, under a sticky header (status line and refresh button)
// from whose lower edge the pull indicator slides in. Give the element a height and let it
// scroll, or keep the element unbounded and let the list itself (or the page) scroll: a pull
// starts only when the element and everything between the pointer and the page, the page
// included, is scrolled to its top.
//
// Gestures use Pointer Events (mouse, pen and touch). For touch the content gets
// `touch-action: pan-x pan-down pinch-zoom` while the element and the page are at their top, so
// the browser keeps vertical scrolling down (horizontal panning, zoom) but leaves a downward drag to the
// element; a non-passive `touchmove` listener also cancels the browser's own pan for a downward
// drag that starts at the top of an inner scrolling list, and for browsers without direction-specific
// `touch-action` values. Vertical scrolling keeps working everywhere else.

const TAG = 'sync-refresh';
/** Indicator travel (px) needed to refresh when the `threshold` attribute is absent or invalid. */
const DEFAULT_THRESHOLD = 64;
/** Mouse or pen travel (px) before a gesture counts as a pull rather than a click or a scroll. */
const SLOP = 4;
/** The same for a finger, which drifts more in a tap (Android's touch slop is 8 dp). */
const TOUCH_SLOP = 10;
/** Where the indicator rests (px below the header) while a sync runs. */
const HOLD = 48;
/** How often the relative "Synced 2 min ago" text is refreshed (ms). */
const TICK_MS = 15_000;

const ICON_REFRESH =
  '<svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false">' +
  '<path fill="currentColor" d="M17.65 6.35A7.96 7.96 0 0 0 12 4a8 8 0 1 0 7.75 10h-2.08A6 6 0 1 1 12 6c1.66 0 ' +
  '3.14.69 4.22 1.78L13 11h7V4l-2.35 2.35z"/></svg>';

const STYLE = `
:host {
  --_accent: var(--sync-refresh-accent, #1a73e8);
  --_surface: var(--sync-refresh-surface, Canvas);
  --_size: var(--sync-refresh-indicator-size, 36px);
  --_duration: var(--sync-refresh-duration, 200ms);
  display: block;
  position: relative;
  overflow-y: auto;
  overscroll-behavior-y: contain;
  /* What is scrolled into view (scrollIntoView, focus) lands below the sticky header. */
  scroll-padding-top: 2.5rem;
}
:host([hidden]) { display: none; }
.header {
  position: sticky;
  top: 0;
  z-index: 1;
  display: flex;
  align-items: center;
  gap: 0.5rem;
  min-height: 2.5rem;
  padding: 0.25rem 0.5rem;
  box-sizing: border-box;
  background: var(--sync-refresh-header-background, var(--_surface));
}
.status {
  flex: 1;
  min-width: 0;
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
  font-size: 0.8125rem;
  color: var(--sync-refresh-status-color, color-mix(in srgb, currentColor 70%, transparent));
}
.status[hidden] { display: none; }
button {
  margin-inline-start: auto;
  display: inline-grid;
  place-items: center;
  width: 2rem;
  height: 2rem;
  padding: 0;
  border: 0;
  border-radius: 50%;
  background: transparent;
  color: var(--_accent);
  cursor: pointer;
  font: inherit;
}
button:hover { background: color-mix(in srgb, var(--_accent) 12%, transparent); }
button:focus { outline: none; }
button:focus-visible {
  outline: 2px solid var(--_accent);
  outline-offset: 2px;
}
.track {
  position: absolute;
  top: 100%;
  left: 0;
  right: 0;
  height: var(--_track-height, 240px);
  overflow: hidden;
  pointer-events: none;
}
.indicator {
  position: absolute;
  top: 0;
  left: 50%;
  display: grid;
  place-items: center;
  width: var(--_size);
  height: var(--_size);
  border-radius: 50%;
  background: var(--_surface);
  color: var(--_accent);
  box-shadow: 0 1px 4px rgb(0 0 0 / 0.25);
  transform: translate(-50%, calc(var(--_pull, 0px) - 100%));
  visibility: hidden;
  transition: transform var(--_duration) ease-out, visibility 0s linear var(--_duration);
}
.root.pulling .indicator, .root.busy .indicator {
  visibility: visible;
  transition: transform var(--_duration) ease-out;
}
.root.dragging .indicator { transition: none; }
.arrow {
  display: grid;
  opacity: calc(0.4 + 0.6 * var(--_progress, 0));
  transform: rotate(calc(var(--_progress, 0) * 270deg));
}
.root.armed .arrow { opacity: 1; }
.root.busy .arrow { display: none; }
.spinner {
  display: none;
  box-sizing: border-box;
  width: 55%;
  height: 55%;
  border: 2.5px solid color-mix(in srgb, var(--_accent) 25%, transparent);
  border-top-color: var(--_accent);
  border-radius: 50%;
  animation: sync-refresh-spin 0.8s linear infinite;
}
.root.busy .spinner { display: block; }
@keyframes sync-refresh-spin { to { transform: rotate(360deg); } }
.content { display: block; }
.content.at-top {
  /* The browser keeps scrolling down, panning sideways and pinch-zoom; a downward drag is the
     element's. */
  touch-action: pan-x pan-y pinch-zoom;
  touch-action: pan-x pan-down pinch-zoom;
}
.root.pulling .content { user-select: none; -webkit-user-select: none; }
.visually-hidden {
  position: absolute;
  width: 1px;
  height: 1px;
  margin: -1px;
  padding: 0;
  overflow: hidden;
  clip: rect(0 0 0 0);
  white-space: nowrap;
  border: 0;
}
@media (prefers-reduced-motion: reduce) {
  /* No rubber band and no rotation: a static indicator appears at its resting place, its ring
     fills with the pull, and the sync shows as a still, dotted ring. */
  .indicator, .root.pulling .indicator, .root.busy .indicator {
    transform: translate(-50%, calc(${HOLD}px - 100%));
    transition: none;
  }
  .arrow { transform: none; }
  .root.pulling .indicator {
    background:
      radial-gradient(closest-side, var(--_surface) 80%, transparent 81%),
      conic-gradient(var(--_accent) calc(var(--_progress, 0) * 360deg), transparent 0) var(--_surface);
  }
  .spinner { animation: none; border-style: dotted; border-color: var(--_accent); }
}
`;

/**
 * The text of a manager error for the status line: `offline` reads "Offline".
 * @param {{ code?: string, message?: string } | null | undefined} error
 * @returns {string}
 */
function errorText(error) {
  if (error?.code === 'offline') return 'Offline';
  if (error?.code === 'auth') return 'Sign-in required';
  return (typeof error?.message === 'string' && error.message) || 'Sync failed';
}

/**
 * "just now", "2 min ago", "3 h ago", or a date for older times.
 * @param {number} then ms since the epoch
 * @param {number} now ms since the epoch
 * @returns {string}
 */
function relativeTime(then, now) {
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 45) return 'just now';
  const minutes = Math.max(1, Math.round(seconds / 60));
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  return `on ${new Date(then).toLocaleDateString()}`;
}

/**
 * Whether every element of a composed path (the page's scrolling element included) is scrolled
 * to its top.
 * @param {Iterable<EventTarget>} path
 */
function allAtTop(path) {
  for (const node of path) {
    if (node instanceof Element && node.scrollTop > 0) return false;
  }
  return true;
}

/**
 * The composed ancestors of a node, itself first, up to the document.
 * @param {Node} node
 * @returns {Generator<Node>}
 */
function* composedAncestors(node) {
  /** @type {any} */
  let at = node;
  for (; at; at = at.assignedSlot ?? at.parentNode ?? (at instanceof ShadowRoot ? at.host : null)) {
    yield at;
  }
}

/**
 * What the element needs of a sync manager (a chat-sync `BackgroundSyncManager` has it all).
 * @typedef {object} SyncManagerLike
 * @property {() => Promise<unknown>} forceSync
 * @property {(conversationId: string) => Promise<unknown>} syncConversation
 * @property {() => any} getSyncStatus
 * @property {(type: string, listener: EventListener) => void} addEventListener
 * @property {(type: string, listener: EventListener) => void} removeEventListener
 */

/**
 * How a refresh ended: the `detail` of `sync-end` and what `refresh()` resolves with.
 * @typedef {{ result: unknown } | { error: unknown }} SyncOutcome
 */

const Base = /** @type {typeof HTMLElement} */ (globalThis.HTMLElement ?? class {});

/** The element's stylesheet, shared by every instance. */
let sharedSheet = null;

/** Styles the shadow root with a constructed stylesheet: pages whose Content-Security-Policy
 * forbids inline styles (`style-src 'self'`) still get them. A `<style>` where constructed
 * stylesheets are missing. */
function adoptStyle(root) {
  if ('adoptedStyleSheets' in root && typeof CSSStyleSheet === 'function' && 'replaceSync' in CSSStyleSheet.prototype) {
    if (!sharedSheet) {
      sharedSheet = new CSSStyleSheet();
      sharedSheet.replaceSync(STYLE);
    }
    root.adoptedStyleSheets = [sharedSheet];
  } else {
    const style = document.createElement('style');
    style.textContent = STYLE;
    root.prepend(style);
  }
}

/**
 * `<sync-refresh>`: pull-to-refresh, a refresh button and an optional sync status line around a
 * list. Attributes: `threshold`, `conversation-id`, `show-sync-status`. Property: `manager`.
 * Events: `sync-start`, `sync-end`. Method: `refresh()`.
 */
export class SyncRefreshElement extends Base {
  static get observedAttributes() {
    return ['threshold', 'conversation-id', 'show-sync-status'];
  }

  /** @type {SyncManagerLike | null} */
  #manager = null;
  /** @type {Promise<SyncOutcome> | null} */
  #running = null;
  /** The last refresh's error, until a later sync succeeds. */
  #error = null;
  #errorAt = 0;
  /** When the last refresh of this element succeeded (ms), for managers whose status lags. */
  #syncedAt = 0;
  /** @type {{ id: number, type: string, x: number, y: number, pulling: boolean, distance: number } | null} */
  #gesture = null;
  #tick = 0;
  #frame = 0;
  #parts;

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<div class="root">
  <div class="header" part="header">
    <span class="status" part="status" hidden></span>
    <button type="button" part="button" aria-label="Refresh" title="Refresh">${ICON_REFRESH}</button>
    <div class="track" aria-hidden="true">
      <div class="indicator" part="indicator">
        <span class="arrow" part="arrow">${ICON_REFRESH}</span>
        <span class="spinner" part="spinner"></span>
      </div>
    </div>
  </div>
  <div class="content"><slot></slot></div>
  <div class="visually-hidden" role="status" aria-live="polite" aria-atomic="true"></div>
</div>`;
    adoptStyle(root);
    this.#parts = {
      root: /** @type {HTMLElement} */ (root.querySelector('.root')),
      status: /** @type {HTMLElement} */ (root.querySelector('.status')),
      button: /** @type {HTMLButtonElement} */ (root.querySelector('button')),
      indicator: /** @type {HTMLElement} */ (root.querySelector('.indicator')),
      track: /** @type {HTMLElement} */ (root.querySelector('.track')),
      content: /** @type {HTMLElement} */ (root.querySelector('.content')),
      live: /** @type {HTMLElement} */ (root.querySelector('[role=status]')),
    };
    this.#parts.button.addEventListener('click', () => void this.refresh());
    this.addEventListener('pointerdown', this.#onPointerDown);
    this.addEventListener('pointermove', this.#onPointerMove);
    this.addEventListener('pointerup', this.#onPointerUp);
    this.addEventListener('pointercancel', this.#onPointerCancel);
    this.addEventListener('touchmove', this.#onTouchMove, { passive: false });
    this.addEventListener('scroll', this.#onScroll, { passive: true });
    this.#applyThreshold();
  }

  /**
   * The sync manager: a chat-sync `BackgroundSyncManager`, or any object with `forceSync()`,
   * `syncConversation(id)`, `getSyncStatus()` and `addEventListener`/`removeEventListener`.
   * The element listens to its `status` events while connected.
   */
  get manager() {
    return this.#manager;
  }

  set manager(manager) {
    if (manager === this.#manager) return;
    this.#unsubscribe();
    this.#manager = manager ?? null;
    this.#error = null;
    this.#syncedAt = 0;
    // A sync of the previous manager still running is not this one's: a pull starts afresh.
    if (this.#running) {
      this.#running = null;
      this.#setBusy(false);
    }
    if (this.isConnected) this.#subscribe();
    this.#renderStatus();
  }

  /** Indicator travel in px that a pull must reach to refresh (attribute `threshold`, default 64). */
  get threshold() {
    const value = Number.parseFloat(this.getAttribute('threshold') ?? '');
    return Number.isFinite(value) && value > 0 ? value : DEFAULT_THRESHOLD;
  }

  set threshold(value) {
    this.setAttribute('threshold', String(value));
  }

  /** The conversation to sync (attribute `conversation-id`); null syncs everything. */
  get conversationId() {
    return this.getAttribute('conversation-id');
  }

  set conversationId(value) {
    if (value == null) this.removeAttribute('conversation-id');
    else this.setAttribute('conversation-id', String(value));
  }

  /** Whether the status line shows (attribute `show-sync-status`). */
  get showSyncStatus() {
    return this.hasAttribute('show-sync-status');
  }

  set showSyncStatus(value) {
    this.toggleAttribute('show-sync-status', Boolean(value));
  }

  /** Whether a refresh started by this element is running. */
  get syncing() {
    return this.#running !== null;
  }

  /**
   * Syncs as a completed pull does: `manager.syncConversation(conversationId)` when the
   * `conversation-id` attribute is set, `manager.forceSync()` otherwise. While one runs, another
   * call returns the same promise. Never rejects: resolves with `{ result }` or `{ error }`, the
   * `detail` of the `sync-end` event.
   * @returns {Promise<SyncOutcome>}
   */
  refresh() {
    if (this.#running) return this.#running;
    const manager = this.#manager;
    const conversationId = this.conversationId;
    /** @type {Promise<unknown>} */
    let call;
    try {
      if (!manager) {
        throw Object.assign(new Error('no manager set on <sync-refresh>'), { code: 'invalidInput' });
      }
      call = Promise.resolve(
        conversationId == null ? manager.forceSync() : manager.syncConversation(conversationId),
      );
    } catch (error) {
      call = Promise.reject(error); // handled just below
    }
    // (The manager may be replaced before it ends: its outcome is then not the new one's.)
    const current = () => this.#manager === manager;
    const running = call
      .then(
        (result) => {
          if (current()) {
            this.#error = null;
            this.#syncedAt = Date.now();
          }
          return /** @type {SyncOutcome} */ ({ result });
        },
        (error) => {
          if (current()) {
            this.#error = error;
            this.#errorAt = Date.now();
          }
          return /** @type {SyncOutcome} */ ({ error });
        },
      )
      .then((outcome) => {
        if (this.#running === running) {
          this.#running = null;
          this.#setBusy(false);
          this.#announce('error' in outcome ? errorText(/** @type {any} */ (outcome.error)) : syncedText(outcome.result));
        }
        this.#emit('sync-end', outcome);
        return outcome;
      });
    this.#running = running;
    this.#setBusy(true);
    this.#emit('sync-start', { conversationId });
    return running;
  }

  connectedCallback() {
    this.#upgradeProperty('manager');
    this.#subscribe();
    globalThis.addEventListener('scroll', this.#onScroll, { capture: true, passive: true });
    this.#updateAtTop();
    this.#renderStatus();
  }

  disconnectedCallback() {
    this.#unsubscribe();
    globalThis.removeEventListener('scroll', this.#onScroll, { capture: true });
    this.#endGesture();
    clearInterval(this.#tick);
    this.#tick = 0;
    cancelAnimationFrame(this.#frame);
    this.#frame = 0;
  }

  /** @param {string} name */
  attributeChangedCallback(name) {
    if (name === 'threshold') this.#applyThreshold();
    if (name === 'show-sync-status') this.#renderStatus();
  }

  /**
   * A property set before the element was defined shadows the accessor: move it over.
   * @param {string} name
   */
  #upgradeProperty(name) {
    if (Object.prototype.hasOwnProperty.call(this, name)) {
      const value = /** @type {any} */ (this)[name];
      delete (/** @type {any} */ (this))[name];
      /** @type {any} */ (this)[name] = value;
    }
  }

  #subscribe() {
    this.#manager?.addEventListener?.('status', this.#onStatus);
  }

  #unsubscribe() {
    this.#manager?.removeEventListener?.('status', this.#onStatus);
  }

  #onStatus = () => {
    const status = this.#status();
    const last = Date.parse(status?.lastSyncTime ?? '');
    if (this.#error && Number.isFinite(last) && last > this.#errorAt) this.#error = null;
    this.#renderStatus();
  };

  /** The manager's status, or null when there is none or it fails. */
  #status() {
    try {
      return this.#manager?.getSyncStatus?.() ?? null;
    } catch {
      return null;
    }
  }

  #applyThreshold() {
    this.#parts.track.style.setProperty('--_track-height', `${3 * this.threshold + HOLD}px`);
  }

  /** @param {string} type @param {unknown} detail */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  /** @param {boolean} busy */
  #setBusy(busy) {
    const { root } = this.#parts;
    root.classList.toggle('busy', busy);
    root.classList.remove('armed');
    if (busy) this.setAttribute('aria-busy', 'true');
    else this.removeAttribute('aria-busy');
    if (!this.#gesture?.pulling) this.#setPull(busy ? HOLD : 0, 0);
    this.#renderStatus();
  }

  /** Moves the indicator. @param {number} distance px @param {number} progress 0..1 */
  #setPull(distance, progress) {
    const { indicator } = this.#parts;
    indicator.style.setProperty('--_pull', `${distance}px`);
    indicator.style.setProperty('--_progress', String(progress));
  }

  /** @param {string} text */
  #announce(text) {
    const { live } = this.#parts;
    // The same text twice is still a change for screen readers.
    live.textContent = live.textContent === text ? `${text}\u00a0` : text;
  }

  #renderStatus() {
    const { status } = this.#parts;
    const show = this.showSyncStatus;
    status.hidden = !show;
    if (show && this.isConnected && !this.#tick) {
      this.#tick = /** @type {any} */ (setInterval(() => this.#renderStatus(), TICK_MS));
    } else if ((!show || !this.isConnected) && this.#tick) {
      clearInterval(this.#tick);
      this.#tick = 0;
    }
    if (!show) return;
    const text = this.#statusText(Date.now());
    if (status.textContent !== text) status.textContent = text;
  }

  /** @param {number} now */
  #statusText(now) {
    const status = this.#status();
    if (this.#running || status?.isRunning) return 'Syncing…';
    if (this.#error) return errorText(this.#error);
    if (status && (status.isOnline === false || status.phase === 'offline')) return 'Offline';
    if (status?.phase === 'authRequired') return 'Sign-in required';
    if (status?.lastError) return errorText(status.lastError);
    const reported = Date.parse(status?.lastSyncTime ?? '');
    const last = Math.max(Number.isFinite(reported) ? reported : 0, this.#syncedAt);
    if (last > 0) return `Synced ${relativeTime(last, now)}`;
    return this.#manager ? 'Not synced yet' : '';
  }

  #onScroll = () => {
    if (this.#frame) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0;
      this.#updateAtTop();
    });
  };

  /** `touch-action` leaves downward drags to the element only while nothing above is scrolled. */
  #updateAtTop() {
    this.#parts.content.classList.toggle('at-top', allAtTop(composedAncestors(this)));
  }

  /** @param {PointerEvent} event */
  #onPointerDown = (event) => {
    if (!event.isPrimary || this.#gesture || this.#running) return;
    if (event.pointerType === 'mouse' && event.button !== 0) return;
    const path = event.composedPath();
    if (path.includes(this.#parts.button) || !allAtTop(path)) return;
    this.#gesture = {
      id: event.pointerId,
      type: event.pointerType,
      x: event.clientX,
      y: event.clientY,
      pulling: false,
      distance: 0,
    };
  };

  /** @param {PointerEvent} event */
  #onPointerMove = (event) => {
    const gesture = this.#gesture;
    if (!gesture || event.pointerId !== gesture.id) return;
    const dy = event.clientY - gesture.y;
    const dx = event.clientX - gesture.x;
    if (!gesture.pulling) {
      const slop = gesture.type === 'touch' ? TOUCH_SLOP : SLOP;
      if (dy < -slop || Math.abs(dx) > Math.max(slop, dy)) {
        this.#gesture = null; // a scroll up or a sideways swipe: not a pull
        return;
      }
      if (dy < slop) return;
      gesture.pulling = true;
      try {
        this.setPointerCapture(event.pointerId);
      } catch {
        // The pointer is gone already; pointerup or pointercancel follows.
      }
      globalThis.getSelection?.()?.removeAllRanges();
      this.#parts.root.classList.add('pulling', 'dragging');
    }
    // Resistance: the indicator follows the pointer less and less, never past 3 × threshold.
    const threshold = this.threshold;
    const limit = 3 * threshold;
    const travel = Math.max(0, dy);
    gesture.distance = (travel * limit) / (travel + limit);
    const progress = Math.min(1, gesture.distance / threshold);
    this.#parts.root.classList.toggle('armed', progress >= 1);
    this.#setPull(gesture.distance, progress);
  };

  /** @param {PointerEvent} event */
  #onPointerUp = (event) => {
    const gesture = this.#gesture;
    if (!gesture || event.pointerId !== gesture.id) return;
    const pulled = gesture.pulling;
    const armed = gesture.distance >= this.threshold;
    this.#endGesture();
    if (!pulled) return;
    // The drag was not a click on whatever it started on.
    const swallow = (/** @type {Event} */ click) => click.stopPropagation();
    this.addEventListener('click', swallow, { capture: true, once: true });
    setTimeout(() => this.removeEventListener('click', swallow, { capture: true }), 0);
    if (armed) void this.refresh();
  };

  /** @param {PointerEvent} event */
  #onPointerCancel = (event) => {
    if (this.#gesture && event.pointerId === this.#gesture.id) this.#endGesture();
  };

  /** Ends a gesture: the indicator goes back to rest (or to its syncing place). */
  #endGesture() {
    const gesture = this.#gesture;
    this.#gesture = null;
    if (!gesture) return;
    if (gesture.pulling && this.hasPointerCapture?.(gesture.id)) {
      try {
        this.releasePointerCapture(gesture.id);
      } catch {
        // Already released.
      }
    }
    this.#parts.root.classList.remove('pulling', 'dragging', 'armed');
    this.#setPull(this.#running ? HOLD : 0, 0);
  }

  /** Keeps the browser from panning (or its own pull-to-refresh) during a downward drag. @param {TouchEvent} event */
  #onTouchMove = (event) => {
    const gesture = this.#gesture;
    const touch = event.touches[0];
    if (!gesture || gesture.type !== 'touch' || !touch || !event.cancelable) return;
    const dy = touch.clientY - gesture.y;
    if (gesture.pulling || (dy > 0 && Math.abs(touch.clientX - gesture.x) <= dy)) event.preventDefault();
  };
}

/** The live region's words for a successful sync. @param {unknown} result */
function syncedText(result) {
  const changes = /** @type {{ changes?: unknown } | null} */ (result)?.changes;
  if (typeof changes === 'number' && changes > 0) {
    return `Synced: ${changes} ${changes === 1 ? 'update' : 'updates'}`;
  }
  return 'Synced: up to date';
}

if (globalThis.customElements && !customElements.get(TAG)) {
  customElements.define(TAG, SyncRefreshElement);
}
