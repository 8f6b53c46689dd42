import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BundleTargetError,
  createFunctionRuntime,
  type FunctionRuntime,
  nextTimerRuns,
  parseTimerCron,
} from '../../sandbox/runtime';
import { startTcbEmulator, type TcbEmulator } from '../../sandbox/tcb';
import { NODE_RUNTIMES } from '../../scripts/runtimes';
import { configuredRuntime } from '../../scripts/target';
import { writeFixtureFunctions } from './fixtures';

let emu: TcbEmulator;
let runtime: FunctionRuntime;
let functionsDir: string;
const logs: string[] = [];

beforeAll(async () => {
  emu = await startTcbEmulator({ collections: ['items', 'ticks'] });
  functionsDir = writeFixtureFunctions();
  runtime = createFunctionRuntime({
    functionsDir,
    serviceUrl: emu.serviceUrl,
    env: { SHOP_NAME: '小店' },
    maxInstances: 3,
    log: (l) => logs.push(l),
  });
});
afterAll(async () => {
  await runtime.close();
  await emu.close();
  rmSync(functionsDir, { recursive: true, force: true });
});

describe('the configured runtime', () => {
  it('runs functions on the Node major of the configured CloudBase runtime, not on the host’s', async () => {
    const configured = configuredRuntime();
    const out = await runtime.invoke('node', {});
    expect(out.error).toBeUndefined();
    const { node } = out.result as { node: string };
    expect(Number(node.split('.')[0])).toBe(configured.major);
    expect(node).toBe(runtime.node.version);
  });

  it('refuses to start on a bundle built for another Node major, naming it and the fix', () => {
    const dir = writeFixtureFunctions();
    try {
      writeFileSync(join(dir, 'ctx', 'package.json'), JSON.stringify({ engines: { node: '16.x' } }));
      const start = () =>
        createFunctionRuntime({ functionsDir: dir, serviceUrl: emu.serviceUrl, log: () => {} });
      expect(start).toThrow(BundleTargetError);
      expect(start).toThrow(`ctx was built for node16, but the runtime is ${configuredRuntime().name}`);
      expect(start).toThrow('npm run build');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a bundle with no build target recorded', () => {
    const dir = writeFixtureFunctions();
    try {
      writeFileSync(join(dir, 'boom', 'package.json'), JSON.stringify({ name: 'boom' }));
      expect(() =>
        createFunctionRuntime({ functionsDir: dir, serviceUrl: emu.serviceUrl, log: () => {} }),
      ).toThrow('boom has no build target recorded');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a mismatched bundle that appears after start, at its first call', async () => {
    cpSync(join(functionsDir, 'boom'), join(functionsDir, 'late16'), { recursive: true });
    writeFileSync(
      join(functionsDir, 'late16', 'package.json'),
      JSON.stringify({ engines: { node: '16.x' } }),
    );
    await expect(runtime.invoke('late16', {})).rejects.toThrow('late16 was built for node16');
    rmSync(join(functionsDir, 'late16'), { recursive: true, force: true });
  });

  it('runs on another configured runtime when a Node of its major is at hand (here: the host’s)', async () => {
    const hostMajor = Number(process.versions.node.split('.')[0]);
    const other = NODE_RUNTIMES.find((r) => r.major === hostMajor) ?? {
      name: `Nodejs${hostMajor}`,
      major: hostMajor,
      endOfLife: '2100-01-01',
      onlineInstall: 'yes' as const,
    };
    const dir = mkdtempSync(join(tmpdir(), 'fns-host-'));
    try {
      cpSync(join(functionsDir, 'node'), join(dir, 'node'), { recursive: true });
      writeFileSync(
        join(dir, 'node', 'package.json'),
        JSON.stringify({ engines: { node: `${hostMajor}.x` } }),
      );
      const onHost = createFunctionRuntime({
        functionsDir: dir,
        serviceUrl: emu.serviceUrl,
        runtime: other,
        log: () => {},
      });
      try {
        const out = await onHost.invoke('node', {});
        expect((out.result as { node: string }).node.split('.')[0]).toBe(String(hostMajor));
      } finally {
        await onHost.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SCF context (second argument of main)', () => {
  it('carries the config.json timeout and counts the remaining time down from the invocation’s start', async () => {
    await runtime.invoke('node', {}); // warm, so the figures below are one invocation's
    const out = await runtime.invoke('node', { waitMs: 300 });
    const r = out.result as { limit: number; first: number; after: number; requestId: string; fn: string };
    expect(out.coldStart).toBe(false);
    expect(r).toMatchObject({ limit: 2000, requestId: out.requestId, fn: 'node' });
    expect(r.first).toBeLessThanOrEqual(2000);
    expect(r.first).toBeGreaterThan(1500);
    expect(r.first - r.after).toBeGreaterThanOrEqual(290);
  });

  it('does not count cold-start module loading against the timeout or the remaining time', async () => {
    const out = await runtime.invoke('slowInit', {});
    expect(out.error).toBeUndefined();
    expect(out.coldStart).toBe(true);
    expect(out.initMs).toBeGreaterThanOrEqual(1400);
    expect((out.result as { remaining: number }).remaining).toBeGreaterThan(500);
  });
});

describe('WX context', () => {
  it('two concurrent invocations with different openids each see only their own, before and after awaiting', async () => {
    const [a, b] = await Promise.all([
      runtime.invoke(
        'ctx',
        { delayMs: 150 },
        { OPENID: 'o_alice', APPID: 'wx_app', CLIENTIP: '10.0.0.1', SOURCE: 'wx_client' },
      ),
      runtime.invoke(
        'ctx',
        { delayMs: 150 },
        { OPENID: 'o_bob', APPID: 'wx_app', UNIONID: 'u_bob', SOURCE: 'wx_client' },
      ),
    ]);
    const expectedA = {
      OPENID: 'o_alice',
      APPID: 'wx_app',
      CLIENTIP: '10.0.0.1',
      ENV: 'local',
      SOURCE: 'wx_client',
    };
    const expectedB = {
      OPENID: 'o_bob',
      APPID: 'wx_app',
      UNIONID: 'u_bob',
      ENV: 'local',
      SOURCE: 'wx_client',
    };
    expect(a.result).toMatchObject({ before: expectedA, after: expectedA });
    expect(b.result).toMatchObject({ before: expectedB, after: expectedB });
    // They overlapped, so each needed its own instance.
    expect([a.coldStart, b.coldStart]).toEqual([true, true]);
  });

  it('a warm instance keeps module state but not the previous caller', async () => {
    const first = await runtime.invoke('ctx', {}, { OPENID: 'o_carol', SOURCE: 'wx_client' });
    const second = await runtime.invoke('ctx', {}, { SOURCE: 'wx_trigger' });
    expect(second.coldStart).toBe(false);
    // Sequential calls land on the same idle instance, whose module state carried over.
    expect((second.result as { calls: number }).calls).toBe((first.result as { calls: number }).calls + 1);
    expect((second.result as { after: unknown }).after).toEqual({ ENV: 'local', SOURCE: 'wx_trigger' });
  });

  it('function env vars reach process.env; the event arrives as sent', async () => {
    const out = await runtime.invoke('ctx', { hello: 'world' }, { OPENID: 'o_x' });
    expect(out.result).toMatchObject({ shop: '小店', event: { hello: 'world' } });
  });

  it('calls beyond maxInstances queue and still get their own identity', async () => {
    const openids = ['o1', 'o2', 'o3', 'o4', 'o5', 'o6'];
    const outs = await Promise.all(openids.map((o) => runtime.invoke('ctx', { delayMs: 50 }, { OPENID: o })));
    expect(outs.map((o) => (o.result as { after: { OPENID: string } }).after.OPENID)).toEqual(openids);
    expect(runtime.instanceCount('ctx')).toBeLessThanOrEqual(3);
  });
});

describe('database request accounting', () => {
  it('counts each invocation’s own requests, even when they run concurrently', async () => {
    const [three, five] = await Promise.all([
      runtime.invoke('db', { n: 3, tag: 'a' }),
      runtime.invoke('db', { n: 5, tag: 'b' }),
    ]);
    expect(three).toMatchObject({ result: 3, dbRequests: 4 });
    expect(five).toMatchObject({ result: 5, dbRequests: 6 });
    expect(logs.some((l) => l.includes('[fn] db') && l.includes('db=6'))).toBe(true);
  });
});

describe('failures', () => {
  it('enforces config.json timeout, then replaces the instance', async () => {
    const out = await runtime.invoke('slow', { ms: 5_000 });
    expect(out.error).toEqual({
      code: 'FUNCTION_TIMEOUT',
      message: 'Invoking task timed out after 1 seconds',
    });
    expect(out.durationMs).toBeGreaterThanOrEqual(990);
    expect(out.durationMs).toBeLessThan(2_000);
    const next = await runtime.invoke('slow', { ms: 10 });
    expect(next).toMatchObject({ result: 'late', coldStart: true });
  });

  it('reports a thrown error with its message', async () => {
    const out = await runtime.invoke('boom', {});
    expect(out.error).toMatchObject({ code: 'FUNCTION_ERROR', message: 'kaboom' });
    expect(out.result).toBeNull();
  });

  it('reports a module that fails to load', async () => {
    const out = await runtime.invoke('broken', {});
    expect(out.error?.message).toContain('cannot load');
  });

  it('rejects an unknown function', async () => {
    await expect(runtime.invoke('nope', {})).rejects.toThrow('function nope not found');
  });
});

describe('timer triggers', () => {
  it('reads triggers from config.json', () => {
    expect(runtime.timers()).toEqual({
      tick: { name: 'everySecond', type: 'timer', config: '* * * * * * *' },
    });
  });

  it('fireTimer sends the SCF timer event with SOURCE wx_trigger and no user', async () => {
    const out = await runtime.fireTimer('everySecond');
    expect(out.error).toBeUndefined();
    expect(out.result).toEqual({
      event: {
        Type: 'Timer',
        TriggerName: 'everySecond',
        Time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
        Message: '',
      },
      ctx: { ENV: 'local', SOURCE: 'wx_trigger' },
    });
  });

  it('startTimers runs the cron until stopTimers', async () => {
    const count = async () =>
      (
        (await (
          await fetch(emu.serviceUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ action: 'database.calculateDocument', collectionName: 'ticks' }),
          })
        ).json()) as { data: { total: number } }
      ).data.total;
    const before = await count();
    runtime.startTimers();
    const deadline = Date.now() + 3_000;
    while ((await count()) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    runtime.stopTimers();
    expect(await count()).toBeGreaterThan(before);
  });
});

describe('7-field cron in UTC+8', () => {
  it('"0 0 2 1 * * *" fires at 02:00 Beijing time on the 1st (18:00 UTC the day before)', () => {
    expect(
      nextTimerRuns('0 0 2 1 * * *', 2, new Date('2026-03-15T00:00:00Z')).map((d) => d.toISOString()),
    ).toEqual(['2026-03-31T18:00:00.000Z', '2026-04-30T18:00:00.000Z']);
  });

  it('"0 */10 * * * * *" fires every ten minutes on the minute', () => {
    expect(
      nextTimerRuns('0 */10 * * * * *', 2, new Date('2026-01-01T00:03:00Z')).map((d) => d.toISOString()),
    ).toEqual(['2026-01-01T00:10:00.000Z', '2026-01-01T00:20:00.000Z']);
  });

  it('weekday names and the year field are honoured', () => {
    // Saturday 2026-01-03 → Monday 09:00 Beijing = 01:00 UTC.
    expect(nextTimerRuns('0 0 9 * * MON-FRI *', 1, new Date('2026-01-03T00:00:00Z'))[0]?.toISOString()).toBe(
      '2026-01-05T01:00:00.000Z',
    );
    expect(nextTimerRuns('0 0 0 1 1 * 2030', 1, new Date('2026-01-01T00:00:00Z'))[0]?.toISOString()).toBe(
      '2029-12-31T16:00:00.000Z',
    );
  });

  it('rejects a 6-field cron (a common mistake; CloudBase needs 7)', () => {
    expect(() => parseTimerCron('0 0 1,13 * * *')).toThrow('must have 7 fields');
  });
});
