// Server-side rendering imports an app's modules in Node: the installed package's entries must
// import there, and creating a manager must reject with code `unsupported` (the manager runs in
// browsers) rather than crash the server process. Usage: node ssr.mjs <server URL>.
import assert from 'node:assert/strict';
import { BackgroundSyncManager } from 'chat-sync';
import { SyncRefreshElement } from 'chat-sync/sync-refresh';

const serverUrl = process.argv[2];
assert.ok(serverUrl, 'usage: node ssr.mjs <server URL>');
const options = { serverUrl, token: 'demo-alice', logLevel: 'off' };
const unsupported = (error) => {
  assert.ok(error instanceof Error, `an Error: ${error}`);
  assert.equal(error.code, 'unsupported', error.message);
  assert.match(error.message, /browser/);
  return true;
};
await assert.rejects(BackgroundSyncManager.create(options), unsupported);
await assert.rejects(BackgroundSyncManager.syncOnce(options), unsupported);
assert.equal(await BackgroundSyncManager.registerBackgroundSync(), false, 'no Background Sync in Node');
assert.equal(typeof SyncRefreshElement, 'function', '<sync-refresh> exports its class');
// An error left behind in a timer or a promise would end the process with a failure meanwhile.
await new Promise((resolve) => { setTimeout(resolve, 500); });
console.log('Node (server-side rendering): both entries import; create and syncOnce reject with code unsupported');
