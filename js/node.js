// The entry of the `chat-sync` package under Node (the `node` export condition), as when a
// framework renders an app's pages on the server: it instantiates the WebAssembly module from
// the file next to it, as Node's `fetch` cannot read files. So importing the package there works,
// and `BackgroundSyncManager.create` rejects with code `unsupported`: the manager runs in the
// browser, in a page or a worker.
import { readFile } from 'node:fs/promises';
import init from './chat_sync.js';

await init({ module_or_path: await readFile(new URL('./chat_sync_bg.wasm', import.meta.url)) });

export { BackgroundSyncManager } from './chat_sync.js';
