/**
 * The stack with the browser console on it: static files from ./public and the console's
 * API on the same gateway. `npm start` and the browser test start the shop this way.
 */
import { join } from 'node:path';
import { type Stack, type StackOptions, startStack } from '../stack';
import { consoleApi } from './api';

export { CONSOLE_API_PREFIX, SECOND_SHOPPER_OPENID } from './api';

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

export function startConsoleStack(options: StackOptions = {}): Promise<Stack> {
  const timeScale = options.timeScale ?? DEMO_TIME_SCALE;
  return startStack({
    ...options,
    timeScale,
    env: { ...DEMO_ENV, ...options.env },
    staticDir: CONSOLE_DIR,
    gatewayExtension: (stack) => consoleApi(stack, { timeScale }),
  });
}
