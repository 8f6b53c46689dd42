/**
 * The Node.js runtimes a CloudBase (SCF) function can be created with, and the one this
 * project builds, tests and deploys for. One list for the build target, the sandbox's
 * function runtime, the deploy and the doctor.
 *
 * Source: CloudBase's "运行环境支持" page (docs.cloudbase.net/cloud-function/runtime-support),
 * which lists Node.js 26.x, 24.11 (Active LTS, recommended), 22.21, 20.19, 18.15 and 16.13.
 * End-of-life dates are Node.js's own (nodejs.org/en/about/previous-releases).
 */
export interface NodeRuntime {
  /** The SCF `Runtime` value. */
  name: string;
  /** Node.js major version, which the build targets (`node<major>`). */
  major: number;
  /** The day Node.js stops security fixes for this major (UTC, YYYY-MM-DD). */
  endOfLife: string;
}

export const NODE_RUNTIMES: readonly NodeRuntime[] = [
  { name: 'Nodejs26', major: 26, endOfLife: '2029-04-30' },
  { name: 'Nodejs24.11', major: 24, endOfLife: '2028-04-30' },
  { name: 'Nodejs22.21', major: 22, endOfLife: '2027-04-30' },
  { name: 'Nodejs20.19', major: 20, endOfLife: '2026-04-30' },
  { name: 'Nodejs18.15', major: 18, endOfLife: '2025-04-30' },
  { name: 'Nodejs16.13', major: 16, endOfLife: '2023-09-11' },
];

/**
 * The platform's recommended Active LTS. Node.js 20 reached end of life on 2026-04-30 and 22
 * is in maintenance until 2027-04-30, so 24 is the oldest line with years of fixes ahead.
 */
export const DEFAULT_RUNTIME = 'Nodejs24.11';

export function findRuntime(name: string): NodeRuntime | undefined {
  return NODE_RUNTIMES.find((r) => r.name === name);
}

export function isEndOfLife(runtime: NodeRuntime, now: Date): boolean {
  return now.getTime() >= Date.parse(`${runtime.endOfLife}T00:00:00Z`);
}
