import { defineConfig } from 'vitest/config';

// Browser tests: Playwright driving Debian's Chromium (/usr/bin/chromium) against the console.
// Kept out of `npm test` so the README's test command needs no browser.
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    testTimeout: 90_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: false,
    globalSetup: ['test/global-setup.ts'],
  },
});
