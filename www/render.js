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

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

/** A short time: `14:05` today, `Nov 12` before. */
export function shortTime(ms) {
  const date = new Date(ms);
  return date.toDateString() === new Date().toDateString()
    ? timeFormat.format(date)
    : dayFormat.format(date);
}

/** `just now`, `5 min ago`, `3 h ago`, or a date. */
export function relativeTime(ms, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - ms) / 1000));
  if (seconds < 45) return 'just now';
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return shortTime(ms);
}

/** One row of the conversation list. */
export function conversationItem({ conversation, last, senderName, unread, selected }) {
  const preview = last
    ? `${senderName}: ${last.body}`
    : 'No messages yet';
  return el('li', { className: 'conversation-item' },
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
        attrs: { 'aria-label': `${unread} unread` },
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
    el('time', { textContent: shortTime(message.serverTs ?? message.composedAt ?? message.sortTs) }),
    mine ? el('span', {
      className: 'mark',
      textContent: mark.symbol,
      title: mark.text,
      attrs: { 'aria-label': mark.text },
    }) : null),
  message.status === 'failed'
    ? el('div', { className: 'failure' },
      el('span', { textContent: message.failure?.message ?? 'Not delivered' }),
      el('button', { type: 'button', className: 'retry', textContent: 'Retry', dataset: { action: 'retry' } }),
      el('button', { type: 'button', className: 'discard', textContent: 'Discard', dataset: { action: 'discard' } }))
    : null);
}

/** A message's identity in the view: client ids are unique per sender. */
export function messageKey(message) {
  return `${message.senderId}/${message.clientMessageId}`;
}
