import { configDefaults, defineConfig } from 'vitest/config';

/** Memory, descriptor and soak tests (issue 6): heavy, so they run alone, after everything else. */
const LOAD_TESTS = 'test/load/**/*.test.ts';

export default defineConfig({
  test: {
    // Reporters are for the whole run: one closing line over both projects.
    reporters: ['default', './test/support/closing-line-reporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'default',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, LOAD_TESTS],
          // e2e files each start their own nginx and peers on free loopback ports;
          // two cores, so keep file-level parallelism modest.
          maxWorkers: 2,
          testTimeout: 30_000,
          hookTimeout: 30_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'load',
          include: [LOAD_TESTS],
          // One file at a time, and only once the default project is done
          // (groupOrder), so timing-sensitive e2e tests never share the cores.
          maxWorkers: 1,
          testTimeout: 180_000,
          hookTimeout: 60_000,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
