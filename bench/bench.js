// The browser side of `make bench`: writes the same messages through the store (wasm), a plain
// IndexedDB put loop (the baseline) and Dexie, each into a fresh database, then times latest-50
// page reads through the store and through the raw index. bench/run.mjs calls `window.benchWrite()`
// once per method and round, each time in a fresh browser profile, then `window.benchChecks()`,
// and turns the figures into docs/benchmarks.md.

import init, * as wasm from './pkg/chat_sync_bench.js';
import Dexie from './node_modules/dexie/dist/dexie.mjs';

/** The server's page cap (FEED_PAGE_MAX): a feed page carries at most this many changes. */
const PAGE = 500;
/** In a sync run the engine stores its first feed page alone, then about this many writes per
 * batch (HOLD_CHANGES in engine/src/engine/pull.rs). */
const HOLD = 2000;
const READS = 1000;
const WARMUP_READS = 20;

/** The messages store as schema.rs creates it (v1 + v2). */
const KEY_PATH = ['senderId', 'clientMessageId'];
const INDEXES = [
  ['byConversation', ['conversationId', 'sortTs']],
  ['byClientMessageId', 'clientMessageId'],
  ['byServerId', 'id'],
];
const DEXIE_SCHEMA = { messages: '[senderId+clientMessageId], [conversationId+sortTs], clientMessageId, id' };

const log = (line) => {
  console.log(line);
  document.getElementById('log').textContent += line + '\n';
};

const settle = (request) => new Promise((resolve, reject) => {
  request.onsuccess = () => resolve(request.result);
  request.onerror = () => reject(request.error);
});

const deleteDatabase = (name) => settle(indexedDB.deleteDatabase(name));

/** A fresh database holding only the messages store with our key path and indexes. */
async function openRaw(name) {
  await deleteDatabase(name);
  const request = indexedDB.open(name, 1);
  request.onupgradeneeded = () => {
    const store = request.result.createObjectStore('messages', { keyPath: KEY_PATH });
    for (const [index, keyPath] of INDEXES) store.createIndex(index, keyPath);
  };
  return settle(request);
}

const completion = (transaction) => new Promise((resolve, reject) => {
  transaction.oncomplete = resolve;
  transaction.onabort = () => reject(transaction.error);
});

/** Baseline: every put in one readwrite transaction; only its completion is awaited. With
 * `page`, one such transaction per `page` records (a diagnostic). */
async function rawWrite(name, records, page = records.length) {
  const db = await openRaw(name);
  const start = performance.now();
  for (let first = 0; first < records.length; first += page) {
    const transaction = db.transaction('messages', 'readwrite');
    const store = transaction.objectStore('messages');
    for (const record of records.slice(first, first + page)) store.put(record);
    await completion(transaction);
  }
  const ms = performance.now() - start;
  db.close();
  return ms;
}

async function dexieWrite(name, records) {
  await Dexie.delete(name);
  const db = new Dexie(name);
  db.version(1).stores(DEXIE_SCHEMA);
  await db.open();
  const start = performance.now();
  await db.messages.bulkPut(records);
  const ms = performance.now() - start;
  db.close();
  return ms;
}

/** The newest 50 messages of `conversation` before `before`, oldest first, through the raw index. */
async function rawLatest50(db, conversation, before) {
  const index = db.transaction('messages', 'readonly').objectStore('messages').index('byConversation');
  const query = IDBKeyRange.bound([conversation, -Infinity], [conversation, before], false, true);
  let values;
  if (index.getAllRecords) {
    const records = await settle(index.getAllRecords({ query, count: 50, direction: 'prev' }));
    values = records.map((record) => record.value);
  } else {
    values = [];
    const request = index.openCursor(query, 'prev');
    await new Promise((resolve, reject) => {
      request.onerror = () => reject(request.error);
      request.onsuccess = () => {
        const cursor = request.result;
        if (!cursor) return resolve();
        values.push(cursor.value);
        if (values.length === 50) return resolve();
        cursor.continue();
      };
    });
  }
  return values.reverse();
}

/** Mulberry32: the same read positions every run. */
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

/** Times latest-50 reads at READS random positions, store and raw alternating who goes first. */
async function reads(name, records) {
  const store = await wasm.OpenStore.open(name);
  const db = await settle(indexedDB.open(name));
  const next = random(42);
  const positions = Array.from({ length: WARMUP_READS + READS }, () => {
    const record = records[Math.floor(next() * records.length)];
    return [record.conversationId, record.sortTs];
  });
  const timed = async (read) => {
    const start = performance.now();
    const ids = await read();
    return [performance.now() - start, ids];
  };
  const storeMs = [];
  const rawMs = [];
  const readValues = [];
  for (const [i, [conversation, before]] of positions.entries()) {
    const viaStore = () => timed(() => store.messages(conversation, before, 50));
    let rawValues;
    const viaRaw = () => timed(async () => {
      rawValues = await rawLatest50(db, conversation, before);
      return rawValues.map((message) => message.clientMessageId);
    });
    let storeTime, storeIds, rawTime, rawIds;
    if (i % 2 === 0) {
      [storeTime, storeIds] = await viaStore();
      [rawTime, rawIds] = await viaRaw();
    } else {
      [rawTime, rawIds] = await viaRaw();
      [storeTime, storeIds] = await viaStore();
    }
    if (storeIds.join() !== rawIds.join()) {
      throw new Error(`store and raw read differ at ${conversation} before ${before}`);
    }
    if (i >= WARMUP_READS) {
      storeMs.push(storeTime);
      rawMs.push(rawTime);
      readValues.push(...rawValues);
    }
  }
  store.close();
  db.close();
  const summary = (ms) => ({ p50: percentile(ms, 50), p95: percentile(ms, 95) });
  // Decoding has no tail worth a percentile and each page's is near the clock's 0.1 ms grain:
  // all pages at once, then the mean per read.
  const decode = wasm.decodeMs(readValues) / READS;
  return { reads: READS, store: summary(storeMs), raw: summary(rawMs), decode };
}

/** Checks that the store wrote exactly the records the baseline and Dexie write. */
async function sameRecords(name, records) {
  const db = await settle(indexedDB.open(name));
  const store = db.transaction('messages', 'readonly').objectStore('messages');
  for (const record of [records[0], records[records.length >> 1], records[records.length - 1]]) {
    const stored = await settle(store.get([record.senderId, record.clientMessageId]));
    if (JSON.stringify(stored) !== JSON.stringify(record)) {
      throw new Error(`the store wrote ${JSON.stringify(stored)}, the baseline ${JSON.stringify(record)}`);
    }
  }
  db.close();
}

/** Diagnostic: what the store's merge asks of IndexedDB, without the store: pages of `PAGE`, each
 * one readwrite transaction that gets every key, waits for the last get, then puts every record. */
async function rawGetThenPut(name, records) {
  const db = await openRaw(name);
  const start = performance.now();
  for (let first = 0; first < records.length; first += PAGE) {
    const page = records.slice(first, first + PAGE);
    const transaction = db.transaction('messages', 'readwrite');
    const store = transaction.objectStore('messages');
    const gets = page.map((record) => store.get([record.senderId, record.clientMessageId]));
    await settle(gets[gets.length - 1]);
    for (const record of page) store.put(record);
    await completion(transaction);
  }
  const ms = performance.now() - start;
  db.close();
  return ms;
}

/** The write methods, by the key run.mjs reports them under. Each writes into a fresh database
 * `name` and resolves to milliseconds. */
const WRITERS = {
  raw: (name, records) => rawWrite(name, records),
  dexie: (name, records) => dexieWrite(name, records),
  storeSync: (name, records) => wasm.storeWrite(name, records.length, PAGE, HOLD),
  storeOneBatch: (name, records) => wasm.storeWrite(name, records.length, records.length, 1),
  storePaged: (name, records) => wasm.storeWrite(name, records.length, PAGE, PAGE),
  rawPaged: (name, records) => rawWrite(name, records, PAGE),
  rawGetThenPut: (name, records) => rawGetThenPut(name, records),
};

/** The write methods, in the order run.mjs reports them. */
window.benchMethods = Object.keys(WRITERS);

/** One write method on `n` messages into a fresh database; resolves to milliseconds. run.mjs
 * calls it in a fresh browser profile each time: in one profile, the browser's background work
 * on the databases earlier methods wrote and deleted slowed the later ones (100,000 messages). */
window.benchWrite = async function benchWrite({ n, method }) {
  await init();
  const ms = await WRITERS[method](`bench-${method}`, wasm.records(n));
  await deleteDatabase(`bench-${method}`);
  return ms;
};

/** The checks and the rest of a size, in a fresh profile: the store writes the `n` messages
 * (pages of `PAGE`), they must read back the same; encoding is timed; with `reads`, latest-50
 * page reads through the store and the raw index. */
window.benchChecks = async function benchChecks({ n, reads: withReads }) {
  await init();
  const records = wasm.records(n);
  await WRITERS.storePaged('bench-storePaged', records);
  await sameRecords('bench-storePaged', records);
  const result = {
    userAgent: navigator.userAgent,
    getAllRecords: 'getAllRecords' in IDBIndex.prototype,
    encode: wasm.encodeMs(n),
  };
  if (withReads) {
    result.reads = { n, ...(await reads('bench-storePaged', records)) };
    log(`latest 50 of ${n}: store p50 ${result.reads.store.p50.toFixed(1)} p95 ${result.reads.store.p95.toFixed(1)} ms, ` +
      `raw p50 ${result.reads.raw.p50.toFixed(1)} p95 ${result.reads.raw.p95.toFixed(1)} ms`);
  }
  await deleteDatabase('bench-storePaged');
  return result;
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The maintenance runs of `benchMaintenance`, in order, on one database: the daily run at the
 * engine's default retention (5,000 per conversation), the same run again (nothing left to do:
 * every day after the first), then the eviction the engine asks for when storage is full (200). */
const MAINTENANCE_RUNS = [['daily', 5000], ['again', 5000], ['quota', 200]];

/** Maintenance of `n` messages (`bench/maintenance.mjs`): the store writes them into a fresh
 * database, then runs `MAINTENANCE_RUNS`, tombstones older than the middle message's stamp
 * compacted. `writeAfterMs` after each run starts, another connection (as another tab, or the
 * app while maintenance runs) stores a composed message; its time is how long it waited. The
 * same write alone follows, for comparison. `legacy` runs maintenance the old way (a walk over
 * every message). */
window.benchMaintenance = async function benchMaintenance({ n, legacy, writeAfterMs }) {
  await init();
  const name = 'bench-maintenance';
  const records = wasm.records(n);
  const before = records[n >> 1].sortTs;
  const conversation = records[n - 1].conversationId;
  const fillMs = await wasm.storeFill(name, n);
  const store = await wasm.OpenStore.open(name);
  if (legacy) store.legacyMaintenance();
  const writer = await wasm.OpenStore.open(name);
  const timed = async (call) => {
    const start = performance.now();
    await call();
    return performance.now() - start;
  };
  const runs = [];
  let composed = 0;
  for (const [label, keep] of MAINTENANCE_RUNS) {
    const maintenance = store.maintenance(keep, before);
    await sleep(writeAfterMs);
    const writeMs = await timed(() => writer.compose(conversation, ++composed));
    const report = await maintenance;
    await sleep(100);
    const aloneMs = await timed(() => writer.compose(conversation, ++composed));
    runs.push({ label, keep, ...report, writeMs, aloneMs });
    log(`${legacy ? 'legacy' : 'store'} ${label} (keep ${keep}): ${report.ms.toFixed(0)} ms, ` +
      `evicted ${report.evicted} from ${report.evictedFrom} conversations, compacted ${report.compacted}; ` +
      `a write ${writeAfterMs} ms in waited ${writeMs.toFixed(0)} ms (alone ${aloneMs.toFixed(0)} ms)`);
  }
  store.close();
  writer.close();
  await deleteDatabase(name);
  return { fillMs, runs };
};
