/**
 * Which CloudBase runtime this checkout builds for and the sandbox runs on: the value of
 * CLOUDBASE_FUNCTION_RUNTIME, else the default in ./runtimes. The build compiles for that
 * runtime's Node major and records it in each function's package.json (`engines.node`,
 * e.g. "24.x"); the sandbox refuses a bundle whose record names another major.
 */
import { DEFAULT_RUNTIME, findRuntime, NODE_RUNTIMES, type NodeRuntime } from './runtimes';

export const RUNTIME_VARIABLE = 'CLOUDBASE_FUNCTION_RUNTIME';

export class RuntimeChoiceError extends Error {
  readonly code = 'RUNTIME_INVALID';
}

/** The configured runtime; an unknown name is an error naming the valid ones, never a guess. */
export function configuredRuntime(env: Record<string, string | undefined> = process.env): NodeRuntime {
  const name = env[RUNTIME_VARIABLE]?.trim() || DEFAULT_RUNTIME;
  const runtime = findRuntime(name);
  if (!runtime) {
    throw new RuntimeChoiceError(
      `${RUNTIME_VARIABLE}=${name} is not a CloudBase Node.js runtime; use one of ${NODE_RUNTIMES.map((r) => r.name).join(', ')}`,
    );
  }
  return runtime;
}

/** esbuild's target for a runtime, e.g. "node24". */
export function esbuildTarget(runtime: NodeRuntime): string {
  return `node${runtime.major}`;
}

/** What a built function's package.json says in `engines.node`, e.g. "24.x". */
export function enginesRange(runtime: NodeRuntime): string {
  return `${runtime.major}.x`;
}

/** The major a bundle was built for, from its package.json `engines.node`; undefined if none. */
export function recordedMajor(pkg: unknown): number | undefined {
  const range = (pkg as { engines?: { node?: unknown } } | null)?.engines?.node;
  const m = typeof range === 'string' ? /^(\d+)\.x$/.exec(range.trim()) : null;
  return m ? Number(m[1]) : undefined;
}
