/**
 * The stack with the browser console on it: static files from ./public, the mini-program's
 * shared tables bundled for the page, and the console's API on the same gateway. `npm start`
 * and the browser test start the shop this way.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { nextTimerRuns } from '../runtime/timers';
import { ROOT, type Stack, type StackOptions, startStack } from '../stack';
import { consoleApi } from './api';

export { CONSOLE_API_PREFIX, CONSOLE_SHARED_PATH, SECOND_SHOPPER_OPENID } from './api';

export const CONSOLE_DIR = join(__dirname, 'public');

/**
 * Sandbox time for a demo that feels real but quick: WeChat's timings × 0.05, so a refund
 * settles 3 s after WeChat accepts it (60 s × 0.05) and a failed notify is retried after
 * 0.75 s, 0.75 s, 1.5 s, 9 s, 30 s… (the 24 h schedule in 72 min).
 */
export const DEMO_TIME_SCALE = 0.05;

/**
 * Nothing to override: reconcile's waits follow the sandbox's time scale like WeChat's own
 * (an order is left to its pay notify for 3 s, refundquery asked 3 s after acceptance).
 */
export const DEMO_ENV: Record<string, string> = {};

/** ./shared.ts as one ES module for the page: the browser runs it as it is, no build step of its own. */
export async function bundleConsoleShared(): Promise<string> {
  const out = await build({
    entryPoints: [join(__dirname, 'shared.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    write: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  return out.outputFiles[0]?.text ?? '';
}

/** The reconcile function's timer, as its config.json declares it. */
function reconcileTimer(functionsDir: string): string | null {
  const file = join(functionsDir, 'reconcile', 'config.json');
  if (!existsSync(file)) return null;
  const config = JSON.parse(readFileSync(file, 'utf8')) as { triggers?: { type: string; config: string }[] };
  return config.triggers?.find((t) => t.type === 'timer')?.config ?? null;
}

export async function startConsoleStack(options: StackOptions = {}): Promise<Stack> {
  const timeScale = options.timeScale ?? DEMO_TIME_SCALE;
  const sharedModule = await bundleConsoleShared();
  const timer = options.timers
    ? reconcileTimer(options.functionsDir ?? join(ROOT, 'dist', 'cloudfunctions'))
    : null;
  return startStack({
    ...options,
    timeScale,
    env: { ...DEMO_ENV, ...options.env },
    staticDir: CONSOLE_DIR,
    gatewayExtension: (stack) =>
      consoleApi(stack, {
        timeScale,
        sharedModule,
        reconcileTimer: timer,
        nextTimerRun: (cron, from) => nextTimerRuns(cron, 1, from)[0],
      }),
  });
}
