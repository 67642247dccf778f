// Types of the `chat-sync` entry: the class, ready to use, and every type of the API
// (`SyncOptions`, `SyncStatus`, `Conversation`, `ChatMessage`, …) from the wasm-bindgen module.
export { BackgroundSyncManager } from './chat_sync.js';
export type * from './chat_sync.js';
