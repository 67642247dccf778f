// Stages the compiled consumer app for the reference server's `--www`: dist/*.js, the installed
// package (node_modules/chat-sync) and an index.html whose import map sends each `chat-sync`
// specifier the app uses where the package's `exports` resolve it for a browser (as Node resolves
// them under `--conditions=browser`, which run.sh gives; so a wrong `exports` entry fails here). Prints the Content-Security-Policy for the page: the demo's
// strict one, with the import map allowed by its hash.
//   node stage.mjs DIR
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const dir = process.argv[2];
if (!dir) throw new Error('usage: node stage.mjs DIR');

/** The specifiers src/main.ts imports (type-only ones included: they must resolve too). */
const SPECIFIERS = ['chat-sync', 'chat-sync/web', 'chat-sync/sync-refresh'];

rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
for (const file of readdirSync(join(here, 'dist')).filter((f) => f.endsWith('.js'))) {
  cpSync(join(here, 'dist', file), join(dir, file));
}
cpSync(join(here, 'node_modules', 'chat-sync'), join(dir, 'node_modules', 'chat-sync'), {
  recursive: true,
  dereference: true,
});

const imports = {};
for (const specifier of SPECIFIERS) {
  const file = fileURLToPath(import.meta.resolve(specifier));
  const path = relative(here, file).split(sep).join('/');
  if (!path.startsWith('node_modules/chat-sync/')) throw new Error(`${specifier} resolved to ${file}`);
  imports[specifier] = `/${path}`;
}
const importMap = JSON.stringify({ imports });

writeFileSync(join(dir, 'index.html'), `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>chat-sync consumer</title>
<link rel="icon" href="data:,">
<script type="importmap">${importMap}</script>
<script type="module" src="/main.js"></script>
<body>
<h1>Conversations</h1>
<p id="status">Syncing…</p>
<ul id="conversations"></ul>
<pre id="report"></pre>
</body>
</html>
`);

const hash = createHash('sha256').update(importMap).digest('base64');
console.log(
  `default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'sha256-${hash}'; style-src 'self'; ` +
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'",
);
