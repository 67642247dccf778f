// A small app that uses the chat-sync package the way its users do: by the package's name, with
// its TypeScript types, type-checked with strict settings. In the page it signs in as the demo
// user Alice against the server that serves the page, syncs, lists the conversations and shows
// what it found; run.mjs reads the report from <pre id="report"> and checks it.
import { BackgroundSyncManager } from 'chat-sync';
import type {
  ChangeDetail,
  ChatMessage,
  Conversation,
  MessageDetail,
  SyncError,
  SyncOptions,
  SyncResult,
  SyncStatus,
} from 'chat-sync';
// The service-worker entry's types (type-only: this page uses the auto-initializing entry).
import type { InitOutput } from 'chat-sync/web';
// The <sync-refresh> element's types (type-only: the element is not used here).
import type { SyncManagerLike, SyncRefreshElement } from 'chat-sync/sync-refresh';

/** What the page found, as JSON in <pre id="report">. */
export interface ConsumerReport {
  ok: boolean;
  error: { code: string; message: string } | null;
  forceSync: SyncResult | null;
  status: SyncStatus | null;
  conversations: Array<Pick<Conversation, 'id' | 'title' | 'unreadCount'> & {
    memberIds: string[];
    /** The body of `lastMessage`. */
    last: string | null;
  }>;
  /** The newest messages of the first conversation. */
  messages: Array<Pick<ChatMessage, 'id' | 'senderId' | 'status'>>;
  newestPage: number;
  /** How many messages `listOutbox` held after the sync (none were sent). */
  outbox: number;
  /** `detail` of every `change` event. */
  changes: ChangeDetail[];
  /** `detail.type` of every `message` event. */
  messageEvents: Array<MessageDetail['type']>;
  /** The wasm module's exports seen through `chat-sync/web`'s types (a type-level check). */
  wasmMemoryIsTyped: boolean;
}

const report: ConsumerReport = {
  ok: false,
  error: null,
  forceSync: null,
  status: null,
  conversations: [],
  messages: [],
  newestPage: 0,
  outbox: -1,
  changes: [],
  messageEvents: [],
  wasmMemoryIsTyped: false,
};

/** A chat-sync manager fits what <sync-refresh> needs (checked by the compiler). */
function attachRefresh(element: SyncRefreshElement | null, sync: SyncManagerLike<SyncResult>): void {
  if (element) element.manager = sync;
}

/** `error` as the manager's `SyncError`, or a plain one. */
function describe(error: unknown): { code: string; message: string } {
  if (error instanceof Error) {
    const code = (error as Partial<SyncError>).code;
    return { code: code ?? 'exception', message: error.message };
  }
  return { code: 'exception', message: String(error) };
}

function render(conversations: Conversation[], status: SyncStatus): void {
  const list = document.querySelector<HTMLUListElement>('#conversations');
  for (const conversation of conversations) {
    const item = document.createElement('li');
    item.textContent = `${conversation.title} (${conversation.members.map((m) => m.displayName).join(', ')})`;
    list?.append(item);
  }
  const line = document.querySelector<HTMLParagraphElement>('#status');
  if (line) line.textContent = `Synced ${status.lastSyncTime ?? 'never'}, phase ${status.phase}`;
}

async function main(): Promise<void> {
  const options: SyncOptions = {
    serverUrl: location.origin,
    token: 'demo-alice',
    userId: 'u-alice',
    logLevel: 'warn',
  };
  const sync = await BackgroundSyncManager.create(options);
  sync.addEventListener('change', (event) => {
    report.changes.push(event.detail);
  });
  sync.addEventListener('message', (event) => {
    report.messageEvents.push(event.detail.type);
  });
  sync.addEventListener('authrequired', () => {
    report.error = { code: 'auth', message: 'the server refused demo-alice' };
  });
  attachRefresh(document.querySelector('sync-refresh'), sync);

  report.forceSync = await sync.forceSync();
  const status: SyncStatus = sync.getSyncStatus();
  report.status = status;
  const conversations: Conversation[] = await sync.listConversations();
  report.conversations = conversations.map(({ id, title, members, lastMessage, unreadCount }) => ({
    id,
    title,
    memberIds: members.map((member) => member.id),
    last: lastMessage?.body ?? null,
    unreadCount,
  }));
  const first = conversations[0];
  if (first) {
    const messages: ChatMessage[] = await sync.listMessages(first.id, { limit: 20 });
    report.messages = messages.map(({ id, senderId, status: delivery }) => ({ id, senderId, status: delivery }));
    // The options are optional: the newest page (50).
    const newest: ChatMessage[] = await sync.listMessages(first.id);
    report.newestPage = newest.length;
  }
  const unsent: ChatMessage[] = await sync.listOutbox();
  report.outbox = unsent.length;
  render(conversations, status);
  sync.dispose();
  report.ok = report.error === null;
}

/** Type-level only: `chat-sync/web`'s init output exposes the wasm memory. */
const memoryOf = (output: InitOutput): WebAssembly.Memory => output.memory;
report.wasmMemoryIsTyped = typeof memoryOf === 'function';

main()
  .catch((error: unknown) => {
    report.error = describe(error);
    console.error('consumer failed:', error);
  })
  .finally(() => {
    const pre = document.querySelector<HTMLPreElement>('#report');
    if (pre) pre.textContent = JSON.stringify(report, null, 2);
    document.body.dataset['state'] = report.ok ? 'done' : 'failed';
  });
