// DOM builders for the demo. Every user-provided string goes in through `textContent` (or an
// attribute), never through HTML parsing.

/** `el('li', { className: 'x', dataset: { id } }, child, 'text')`: an element with children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { dataset, attrs, ...rest } = props;
  Object.assign(node, rest);
  for (const [key, value] of Object.entries(dataset ?? {})) node.dataset[key] = value;
  for (const [key, value] of Object.entries(attrs ?? {})) node.setAttribute(key, value);
  for (const child of children) {
    if (child != null && child !== false) node.append(child);
  }
  return node;
}

/**
 * Makes `list`'s children the `items`, elements keyed by `data-key`. A child whose key is among
 * the items stays the same element, changed in place to match its item, so the focus, a text
 * selection and where a screen reader is stay through a re-render; only moved children move.
 * Items carry no event handlers (the lists delegate theirs): attributes and children are copied.
 */
export function patchChildren(list, items) {
  const active = document.activeElement;
  const byKey = new Map();
  for (const child of [...list.children]) {
    // (A key seen twice keeps its first element: a second one would never be matched or removed.)
    if (child.dataset.key && !byKey.has(child.dataset.key)) byKey.set(child.dataset.key, child);
    else child.remove();
  }
  const next = items.map((item) => {
    const old = byKey.get(item.dataset.key);
    byKey.delete(item.dataset.key);
    return old ? morph(old, item) : item;
  });
  for (const child of byKey.values()) child.remove();
  next.forEach((node, i) => {
    if (list.children[i] !== node) list.insertBefore(node, list.children[i] ?? null);
  });
  // Moving an element takes the focus off it.
  if (active !== document.activeElement && list.contains(active)) active.focus({ preventScroll: true });
}

/** Changes `old` in place into a copy of `item` (its attributes and, by position, its children);
 * a node of another kind is replaced. Returns the node now in `old`'s place. */
function morph(old, item) {
  if (old.nodeName !== item.nodeName) {
    old.replaceWith(item);
    return item;
  }
  if (old.nodeType === Node.TEXT_NODE) {
    if (old.data !== item.data) old.data = item.data;
    return old;
  }
  for (const name of old.getAttributeNames()) {
    if (!item.hasAttribute(name)) old.removeAttribute(name);
  }
  for (const name of item.getAttributeNames()) {
    const value = item.getAttribute(name);
    if (old.getAttribute(name) !== value) old.setAttribute(name, value);
  }
  const olds = [...old.childNodes];
  const news = [...item.childNodes];
  news.forEach((child, i) => {
    if (i < olds.length) morph(olds[i], child);
    else old.append(child);
  });
  for (const child of olds.slice(news.length)) child.remove();
  return old;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const weekdayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long' });
const fullDayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric', year: 'numeric' });

/** The local calendar day of `ms`, as a number that counts days (for "same day?" and "how many
 * days ago?"; daylight-saving changes do not shift it). */
export function dayNumber(ms) {
  const date = new Date(ms);
  return Math.round(Date.UTC(date.getFullYear(), date.getMonth(), date.getDate()) / 86_400_000);
}

/** A message's time in its bubble: `14:05` (the day is in the divider above it). */
export function clockTime(ms) {
  return timeFormat.format(new Date(ms));
}

/** A short time for the conversation list: `14:05` today, then `Yesterday`, then `Nov 12`. */
export function shortTime(ms, now = Date.now()) {
  const daysAgo = dayNumber(now) - dayNumber(ms);
  if (daysAgo <= 0) return timeFormat.format(new Date(ms));
  if (daysAgo === 1) return 'Yesterday';
  return dayFormat.format(new Date(ms));
}

/** The label of a day divider: `Today`, `Yesterday`, a weekday within the last week, or the
 * full date. */
export function dayLabel(ms, now = Date.now()) {
  const daysAgo = dayNumber(now) - dayNumber(ms);
  if (daysAgo <= 0) return 'Today';
  if (daysAgo === 1) return 'Yesterday';
  if (daysAgo < 7) return weekdayFormat.format(new Date(ms));
  return fullDayFormat.format(new Date(ms));
}

/** The divider above a day's first message. */
export function dayDivider(ms, occurrence = 1) {
  const key = occurrence > 1 ? `day-${dayNumber(ms)}-${occurrence}` : `day-${dayNumber(ms)}`;
  // (A separator's content is not read out: its label is.)
  return el('li', { className: 'day', dataset: { key }, attrs: { role: 'separator', 'aria-label': dayLabel(ms) } },
    el('time', { textContent: dayLabel(ms), dateTime: new Date(ms).toISOString() }));
}

/** `just now`, `5 min ago`, `3 h ago`, or a date. */
export function relativeTime(ms, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - ms) / 1000));
  if (seconds < 45) return 'just now';
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return shortTime(ms);
}

/** A duration in words, to the largest whole unit: `7 days`, `1 hour`, `90 minutes` is `2 hours`
 * (rounded), `1 second` at least. */
export function durationText(ms) {
  const units = [['day', 86_400_000], ['hour', 3_600_000], ['minute', 60_000], ['second', 1000]];
  const [unit, size] = units.find(([, size]) => ms >= size) ?? units.at(-1);
  const count = Math.max(1, Math.round(ms / size));
  return `${count} ${unit}${count === 1 ? '' : 's'}`;
}

/** The divider above the first message that was unread when the conversation opened. */
export function unreadDivider(count) {
  const text = `${count} unread message${count === 1 ? '' : 's'}`;
  return el('li', { className: 'unread-divider', dataset: { key: 'unread' }, attrs: { role: 'separator', 'aria-label': text } },
    el('span', { textContent: text }));
}

/** One row of the conversation list. */
export function conversationItem({ conversation, last, senderName, unread, selected }) {
  const preview = last ? `${senderName}: ${last.body}` : 'No messages yet';
  return el('li', { className: 'conversation-item', dataset: { key: conversation.id } },
    el('button', {
      type: 'button',
      className: 'conversation',
      dataset: { id: conversation.id },
      attrs: selected ? { 'aria-current': 'true' } : {},
    },
    el('span', { className: 'conversation-title', textContent: conversation.title }),
    last ? el('time', { className: 'conversation-time', textContent: shortTime(last.sortTs) }) : null,
    el('span', { className: 'conversation-preview', textContent: preview }),
    unread > 0
      ? el('span', {
        className: 'unread',
        textContent: unread > 99 ? '99+' : String(unread),
        // `unreadCount` stops at 100: past 99, the label says no more than the badge.
        attrs: { 'aria-label': unread > 99 ? 'more than 99 unread' : `${unread} unread` },
      })
      : null));
}

const MARKS = {
  pending: { text: 'Sending…', symbol: '🕓' },
  sent: { text: 'Sent', symbol: '✓' },
  read: { text: 'Read', symbol: '✓✓' },
  failed: { text: 'Not sent', symbol: '!' },
};

/** One message bubble; own messages get a delivery mark (`read` once another member has read
 * them), failed ones retry/discard buttons. */
export function messageItem(message, { mine, senderName, read = false }) {
  const mark = MARKS[read && message.status === 'sent' ? 'read' : message.status];
  return el('li', {
    className: `message${mine ? ' mine' : ''}`,
    dataset: { key: messageKey(message), status: message.status, clientMessageId: message.clientMessageId },
  },
  mine ? null : el('span', { className: 'sender', textContent: senderName }),
  el('p', { className: 'body', textContent: message.body }),
  el('span', { className: 'meta' },
    message.edited ? el('span', { className: 'edited', textContent: 'edited' }) : null,
    el('time', { textContent: clockTime(messageTime(message)), dateTime: new Date(messageTime(message)).toISOString() }),
    mine ? el('span', {
      className: 'mark',
      textContent: mark.symbol,
      title: mark.text,
      // (A label on a plain span is not read out; on an image it is.)
      attrs: { role: 'img', 'aria-label': mark.text },
    }) : null),
  message.status === 'failed'
    ? el('div', { className: 'failure' },
      el('span', { textContent: message.failure?.message ?? 'Not delivered' }),
      el('button', { type: 'button', className: 'retry', textContent: 'Retry', dataset: { action: 'retry' } }),
      el('button', { type: 'button', className: 'discard', textContent: 'Discard', dataset: { action: 'discard' } }))
    : null);
}

/** When a message was written: the server's stamp, or the composing time while it is not sent. */
export function messageTime(message) {
  return message.serverTs ?? message.composedAt ?? message.sortTs;
}

/** A message's identity in the view: client ids are unique per sender. */
export function messageKey(message) {
  return `${message.senderId}/${message.clientMessageId}`;
}
