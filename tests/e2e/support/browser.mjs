// The browser every end-to-end test drives: the system Chromium through playwright-core
// (browser downloads are not possible here; `ensure_chromium` in scripts/lib.sh installs it).
// CHROMIUM=/path/to/chromium overrides the executable.

import { chromium } from 'playwright-core';

/** Launches headless Chromium. Close it in an `after` hook. */
export function launchBrowser(options = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox'],
    ...options,
  });
}

/**
 * Collects a page's uncaught errors and unhandled rejections (`pageerror`) so a test can assert
 * there were none.
 * @param {import('playwright-core').Page} page
 * @returns {Error[]}
 */
export function collectPageErrors(page) {
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  return errors;
}
