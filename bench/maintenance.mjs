// Maintenance of a large cache, timed in headless Chromium (not part of `make bench`): the store
// writes 100,000 messages, then runs maintenance as the engine does (evict history past
// retention, compact tombstones), while another connection stores a composed message; the old
// way (a walk over every message, `legacyMaintenance`) and the store's alternate, each round in
// a fresh browser profile. Prints each run and the medians.
//
//   cargo build -p chat-sync-bench --release --target wasm32-unknown-unknown
//   wasm-bindgen --target web --out-dir bench/pkg target/wasm32-unknown-unknown/release/chat_sync_bench.wasm
//   node bench/maintenance.mjs          (bench/run.sh builds the same, and installs what it needs)
//   BENCH_N=100000        messages
//   BENCH_ROUNDS=2        rounds of each way
//   BENCH_WRITE_AFTER=20  ms after maintenance starts that the write is issued
//   BENCH_WAYS=legacy,store

import { inFreshProfile, serve } from './browser.mjs';

const n = Number(process.env.BENCH_N ?? 100_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
const writeAfterMs = Number(process.env.BENCH_WRITE_AFTER ?? 20);
const ways = (process.env.BENCH_WAYS ?? 'legacy,store').split(',');

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

const server = await serve();
const url = `http://127.0.0.1:${server.address().port}/index.html`;
const results = Object.fromEntries(ways.map((way) => [way, []]));
let browser;
try {
  for (let round = 0; round < rounds; round++) {
    for (const way of round % 2 ? [...ways].reverse() : ways) {
      const result = await inFreshProfile(url, (page) => page.evaluate(
        (o) => window.benchMaintenance(o), { n, legacy: way === 'legacy', writeAfterMs }));
      browser = result.browser;
      results[way].push(result.value);
    }
  }
} finally {
  server.close();
}
console.log(`\n${browser}, ${n.toLocaleString('en-US')} messages, ${rounds} rounds, write issued ${writeAfterMs} ms in`);
console.log('| run | way | maintenance ms | write waited ms | write alone ms | evicted | compacted |');
console.log('|---|---|--:|--:|--:|--:|--:|');
for (const [i, run] of results[ways[0]][0].runs.entries()) {
  for (const way of ways) {
    const runs = results[way].map((value) => value.runs[i]);
    const each = (key) => runs.map((r) => r[key].toFixed(0)).join(' / ');
    console.log(`| ${run.label} (keep ${run.keep}) | ${way} | ${median(runs.map((r) => r.ms)).toFixed(0)} (${each('ms')}) | ` +
      `${median(runs.map((r) => r.writeMs)).toFixed(0)} (${each('writeMs')}) | ${median(runs.map((r) => r.aloneMs)).toFixed(0)} | ` +
      `${runs[0].evicted} | ${runs[0].compacted} |`);
  }
}
