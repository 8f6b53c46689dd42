/**
 * The Node.js runtimes a CloudBase (SCF) function can be created with, and the one this
 * project builds, tests and deploys for. One list for the build target, the sandbox's
 * function runtime, the deploy and the doctor.
 *
 * Versions: CloudBase's "运行环境支持" page (docs.cloudbase.net/cloud-function/runtime-support)
 * lists Node.js 26.x (Current), 24.11 (Active LTS, recommended), 22.21, 20.19, 18.15 and 16.13.
 * The `Runtime` values are the ones SCF's CreateFunction takes: Nodejs16.13/18.15/20.19 appear
 * in @cloudbase/manager-node 5.6.5 (its default is Nodejs20.19), Nodejs22.21 and Nodejs24.11 in
 * public deploy records of functions that reached Active. 26.x is left out: no `Runtime` value
 * for it is published, and a guessed one would fail at CreateFunction.
 * End-of-life dates are Node.js's own (nodejs.org/en/about/previous-releases).
 */
export interface NodeRuntime {
  /** The SCF `Runtime` value. */
  name: string;
  /** Node.js major version, which the build targets (`node<major>`). */
  major: number;
  /** The day Node.js stops security fixes for this major (UTC, YYYY-MM-DD). */
  endOfLife: string;
  /**
   * Whether 云端安装依赖 (InstallDependency) is known to work on it. Public deploy records
   * report that the Node.js 22 and 24 runtimes (still marked 公测 by the CloudBase CLI) do
   * not install dependencies in the cloud, so a build that needs it should not rely on it there.
   */
  onlineInstall: 'yes' | 'unconfirmed';
}

export const NODE_RUNTIMES: readonly NodeRuntime[] = [
  { name: 'Nodejs24.11', major: 24, endOfLife: '2028-04-30', onlineInstall: 'unconfirmed' },
  { name: 'Nodejs22.21', major: 22, endOfLife: '2027-04-30', onlineInstall: 'unconfirmed' },
  { name: 'Nodejs20.19', major: 20, endOfLife: '2026-04-30', onlineInstall: 'yes' },
  { name: 'Nodejs18.15', major: 18, endOfLife: '2025-04-30', onlineInstall: 'yes' },
  { name: 'Nodejs16.13', major: 16, endOfLife: '2023-09-11', onlineInstall: 'yes' },
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

/** `CLOUDBASE_FUNCTION_RUNTIME`, checked against the list; the default when unset. */
export function chooseRuntime(value: string | undefined): { runtime: NodeRuntime } | { problem: string } {
  const name = value?.trim() || DEFAULT_RUNTIME;
  const runtime = findRuntime(name);
  if (runtime) return { runtime };
  return {
    problem: `CLOUDBASE_FUNCTION_RUNTIME ${name} is not a CloudBase Node.js runtime; use one of ${NODE_RUNTIMES.map((r) => r.name).join(', ')}`,
  };
}
