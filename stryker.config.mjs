// @ts-check
/**
 * Mutation testing (TESTING.md): `npm run test:mutation`. Not part of `npm test`; on two
 * cores a full run takes a long time. Narrow it with `-- --mutate <glob>`.
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts', related: false },
  plugins: ['@stryker-mutator/vitest-runner'],
  mutate: [
    'cloudfunctions/shared/domain/**/*.ts',
    'cloudfunctions/shared/wxpay/**/*.ts',
    'cloudfunctions/shared/runtime/**/*.ts',
    // Builders of signed test messages, used by tests and the simulator only.
    '!cloudfunctions/shared/wxpay/testing.ts',
  ],
  coverageAnalysis: 'perTest',
  // event-recorder writes each mutant's result as it is decided, so a run stopped before its
  // end still names its survivors: `npx tsx scripts/mutation-survivors.ts`.
  reporters: ['clear-text', 'html', 'json', 'progress', 'event-recorder'],
  eventReporter: { baseDir: 'reports/mutation/events' },
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  clearTextReporter: { allowColor: false, logTests: false, reportTests: false },
  thresholds: { high: 90, low: 80, break: null },
  concurrency: 2,
  ignorePatterns: ['dist', '.data', 'test-artifacts', 'reports', 'bench', 'miniprogram', 'docs'],
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
