// A tiny static file server on 127.0.0.1 (a free port) for browser tests.
//
//     const server = await serveStatic({ '/': repoPath('js'), '/fixtures': here('fixtures') });
//     await page.goto(`${server.url}/fixtures/page.html`);
//     await server.close();
//
// Each key of `mounts` is a URL prefix served from a directory; requests outside every mount, or
// escaping a directory with `..`, get 404. `routes` maps exact paths to handlers for anything
// dynamic: `(request, response) => void`.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** A path inside the repository. @param {...string} parts */
export const repoPath = (...parts) => join(ROOT, ...parts);

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.webmanifest': 'application/manifest+json',
};

/**
 * Serves directories (and optional dynamic routes) on 127.0.0.1:0.
 * @param {Record<string, string>} mounts URL prefix → directory
 * @param {Record<string, (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void>} [routes]
 * @returns {Promise<{ url: string, close: () => Promise<void> }>}
 */
export async function serveStatic(mounts, routes = {}) {
  // Longest prefix first, so '/js' wins over '/'.
  const table = Object.entries(mounts)
    .map(([prefix, dir]) => [prefix.replace(/\/+$/, ''), resolve(dir)])
    .sort((a, b) => b[0].length - a[0].length);
  const server = createServer(async (request, response) => {
    try {
      const pathname = decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname);
      const route = routes[pathname];
      if (route) return route(request, response);
      for (const [prefix, dir] of table) {
        if (pathname !== prefix && !pathname.startsWith(`${prefix}/`)) continue;
        let file = resolve(join(dir, pathname.slice(prefix.length)));
        if (file !== dir && !file.startsWith(dir + sep)) break;
        if (pathname.endsWith('/')) file = join(file, 'index.html');
        const body = await readFile(file);
        response.writeHead(200, {
          'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
          'cache-control': 'no-store',
        });
        return response.end(body);
      }
      response.writeHead(404).end();
    } catch {
      if (!response.headersSent) response.writeHead(404);
      response.end();
    }
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((done) => {
      server.closeAllConnections();
      server.close(() => done());
    }),
  };
}
