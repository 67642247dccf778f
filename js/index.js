// The entry of the `chat-sync` package: instantiates the WebAssembly module on import (top-level
// await), so apps just `import { BackgroundSyncManager } from 'chat-sync'`. Bundlers (Vite,
// webpack 5) pick the wasm file up from the `new URL('chat_sync_bg.wasm', import.meta.url)` in
// chat_sync.js. Service workers do not allow top-level await: they import `chat-sync/web` and
// call its `init()` themselves.
import init from './chat_sync.js';

await init();

export { BackgroundSyncManager } from './chat_sync.js';
