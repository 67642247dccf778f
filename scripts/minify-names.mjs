// Gives the wasm's imports short names, in the module and in wasm-bindgen's JS glue
// (`scripts/build-pkg.sh`, step 3).
//
//   node scripts/minify-names.mjs DIR
//
// DIR holds chat_sync_bg.wasm and its glue, chat_sync.js. wasm-bindgen names each import after
// its JS function and a hash (`__wbg_fetch_8d9b732df7467c44`), which barely compresses: about 200
// of them cost 3.4 KB of the gzipped wasm and 2.6 KB of the gzipped glue (docs/benchmarks.md,
// "Package size"). They become `a`, `b`, … `ba`, …, of one module `a`. The exports keep their
// names: they are the glue's API to the module, and `init()` gives them to the app (`memory`).
//
// In the glue an import is a key of the import object (`name: function(…) {…}`) and the module
// the key that object is given under (`"./chat_sync_bg.js": import0`). Each must be found there
// exactly once, or this fails, and the build with it; so does a module that does not compile
// afterwards.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir] = process.argv.slice(2);
const wasmFile = join(dir, 'chat_sync_bg.wasm');
const glueFile = join(dir, 'chat_sync.js');

function fail(message) {
  console.error(`minify-names: ${message}`);
  process.exit(1);
}

/** A short name for the `index`th import: `a` … `z`, `ba`, `bb`, … (letters as digits). */
function shortName(index) {
  let name = '';
  do {
    name = String.fromCharCode(97 + (index % 26)) + name;
    index = Math.floor(index / 26);
  } while (index > 0);
  return name;
}

/** Reads the module's sections; writes them back with the import section's names replaced. */
class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.at = 0;
  }
  byte() {
    return this.bytes[this.at++];
  }
  u32() {
    let value = 0;
    let shift = 0;
    let byte;
    do {
      byte = this.byte();
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    return value;
  }
  take(length) {
    this.at += length;
    return this.bytes.subarray(this.at - length, this.at);
  }
  name() {
    return new TextDecoder().decode(this.take(this.u32()));
  }
}

function u32(value) {
  const out = [];
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    out.push(byte);
  } while (value > 0);
  return out;
}

function name(text) {
  const bytes = new TextEncoder().encode(text);
  return [...u32(bytes.length), ...bytes];
}

const bytes = readFileSync(wasmFile);
const input = new Reader(bytes);
const output = [input.take(8)]; // magic and version: then each section, as byte arrays
const renamed = []; // [module, old name, new name]
while (input.at < bytes.length) {
  const id = input.byte();
  const body = input.take(input.u32());
  if (id !== 2) {
    output.push(Uint8Array.of(id, ...u32(body.length)), body);
    continue;
  }
  // The import section: each entry's module and name, then what it imports, copied as it is.
  const section = new Reader(body);
  const count = section.u32();
  const entries = u32(count);
  for (let index = 0; index < count; index += 1) {
    const module = section.name();
    const field = section.name();
    const start = section.at;
    const kind = section.byte();
    if (kind === 0) section.u32(); // a function: its type
    else if (kind === 1 || kind === 2) {
      if (kind === 1) section.byte(); // a table: its element type
      const flags = section.byte(); // limits
      section.u32();
      if (flags & 1) section.u32();
    } else if (kind === 3) section.take(2); // a global: its type and mutability
    else fail(`import ${module}.${field} is of kind ${kind}, which this does not read`);
    const short = shortName(index);
    renamed.push([module, field, short]);
    entries.push(...name('a'), ...name(short), ...body.subarray(start, section.at));
  }
  output.push(Uint8Array.of(id, ...u32(entries.length), ...entries));
}

const modules = new Set(renamed.map(([module]) => module));
if (modules.size !== 1) fail(`expected the imports of one module, found ${[...modules].join(', ')}`);
const [module] = modules;

// `text` with `pattern` (a regular expression's source) replaced, found exactly once.
function replaceOnce(text, pattern, replacement, what) {
  let found = 0;
  const result = text.replace(new RegExp(pattern, 'g'), () => {
    found += 1;
    return replacement;
  });
  if (found !== 1) fail(`${what}: found ${found} times in chat_sync.js, expected once`);
  return result;
}
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let glue = readFileSync(glueFile, 'utf8');
glue = replaceOnce(glue, `${escape(JSON.stringify(module))}(?=: import0\\b)`, '"a"', `module ${module}`);
for (const [, field, short] of renamed) {
  glue = replaceOnce(glue, `(?<![\\w$])${escape(field)}(?=: function\\b)`, short, `import ${field}`);
}

const minified = Buffer.concat(output);
const imports = WebAssembly.Module.imports(new WebAssembly.Module(minified));
if (imports.length !== renamed.length) fail('the rewritten module lost imports');
writeFileSync(wasmFile, minified);
writeFileSync(glueFile, glue);
