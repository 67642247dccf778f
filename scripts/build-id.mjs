// Writes DIR/build-id.js (`export const BUILD_ID = '…'`): a hash of the package's files in DIR
// (pkg/), so that a service worker importing it changes whenever the package does, a deploy that
// changes only the wasm included. The browser compares a service worker's script and its imports
// byte for byte to decide whether a new worker installs; the wasm-bindgen glue stays the same when
// only the Rust inside changes. Not part of the npm package (build-pkg.sh writes it after
// package.json lists the package's files); the demo's service worker uses it.
//
//   node scripts/build-id.mjs pkg
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node scripts/build-id.mjs DIR');
  process.exit(2);
}
const hash = createHash('sha256');
// The package's own files (not the precompressed copies of them, nor an earlier build id).
const files = readdirSync(dir)
  .filter((name) => !/\.(br|gz)$/.test(name) && name !== 'build-id.js')
  .sort();
for (const name of files) {
  hash.update(`${name}\0`);
  hash.update(readFileSync(join(dir, name)));
}
const id = hash.digest('hex').slice(0, 16);
writeFileSync(join(dir, 'build-id.js'),
  `// Written by scripts/build-id.mjs: changes whenever a file of this package does.\nexport const BUILD_ID = '${id}';\n`);
console.log(id);
