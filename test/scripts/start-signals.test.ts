/**
 * `npm start` stops when a supervisor or a container runtime signals the npm process, not only
 * on a terminal's Ctrl-C (which reaches the whole process group). The signal goes to npm alone
 * here, as `kill` from a supervisor would send it, and all three ports must be free within 5 s.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT } from '../../sandbox/stack';

const HOST = '127.0.0.1';
const FREED_WITHIN_MS = 5000;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, HOST, () => srv.close(() => resolve(true)));
  });
}

interface Started {
  npm: ChildProcess;
  ports: number[];
  output: () => string;
}

const started: Started[] = [];
const dirs: string[] = [];

afterEach(() => {
  // Whatever is left of a failed run: its own process group, which only this test started.
  for (const s of started.splice(0)) {
    try {
      if (s.npm.pid) process.kill(-s.npm.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** `npm start` on three free ports with a fresh data folder, in its own process group. */
async function npmStart(): Promise<Started> {
  const ports = [await freePort(), await freePort(), await freePort()];
  const data = mkdtempSync(join(tmpdir(), 'shop-start-'));
  dirs.push(data);
  const [gateway, tcb, wxpay] = ports.map(String) as [string, string, string];
  // --no-build: the functions were built by the test setup, and rebuilding them here would
  // rewrite bundles that other test files are loading at the same time.
  const npm = spawn(
    'npm',
    [
      'start',
      '--',
      '--no-build',
      '--port',
      gateway,
      '--tcb-port',
      tcb,
      '--wxpay-port',
      wxpay,
      '--data',
      data,
    ],
    { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
  );
  let out = '';
  npm.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  npm.stderr?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const s = { npm, ports, output: () => out };
  started.push(s);
  const deadline = Date.now() + 60_000;
  while (!out.includes('The offline shop is up')) {
    if (npm.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const p of ports) expect(await isFree(p), `port ${p} in use once up`).toBe(false);
  // The banner names everyone the console can act as.
  for (const who of ['o_shopper_demo', 'o_shopper_two', 'o_admin_demo']) expect(out).toContain(who);
  return s;
}

async function allFreeWithin(ports: number[], ms: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const free = await Promise.all(ports.map(isFree));
    if (free.every(Boolean)) return Date.now() - t0;
    if (Date.now() - t0 > ms) {
      throw new Error(`ports still bound after ${ms} ms: ${ports.filter((_, i) => !free[i]).join(', ')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('npm start and signals', () => {
  it.each(['TERM', 'INT'])(
    'kill -%s to the npm process frees all three ports within 5 s',
    async (signal) => {
      const s = await npmStart();
      execFileSync('kill', [`-${signal}`, String(s.npm.pid)]);
      const ms = await allFreeWithin(s.ports, FREED_WITHIN_MS);
      expect(ms).toBeLessThan(FREED_WITHIN_MS);
      await new Promise((r) => setTimeout(r, 200));
      expect(s.output()).toContain('Stopped. The data stays in');
    },
    90_000,
  );
});
