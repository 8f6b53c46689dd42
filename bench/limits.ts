/**
 * What the per-caller limits add to createOrder, through the stack: the built createOrder in
 * the function runtime, the real wx-server-sdk, the CloudBase emulator and the WeChat Pay
 * simulator. Every createOrder logs what its limits step cost (`order.created` → `limits`:
 * database requests and the time spent waiting for them); this reads those lines beside the
 * emulator's per-invocation count. Target: at most one extra database request on the normal
 * path (a known caller, under every limit, a new cart).
 *
 * The other paths are measured once each, for the table: a caller's very first call, the same
 * cart again, a refusal for open orders and one for calls per minute.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { InvokeContext } from '../sandbox/runtime';
import { ROOT, startStack } from '../sandbox/stack';
import { median, percentile, round, table } from './stats';

interface PathCost {
  path: string;
  /** Database requests of the whole createOrder call. */
  dbRequests: number;
  /** Of them, the limits' (from the function's `order.created` line: a new order only). */
  limitsRequests: number | null;
  outcome: string;
}

export interface LimitsBench {
  rounds: number;
  normal: {
    dbRequests: number[];
    limitsRequests: number[];
    createOrderP50Ms: number;
    createOrderP90Ms: number;
    limitsDbP50Ms: number;
    limitsDbP90Ms: number;
  };
  paths: PathCost[];
  target: { target: string; measured: string; met: boolean };
}

const cart = (i: number) => ({ items: [{ productId: 'chopsticks', quantity: (i % 99) + 1 }] });

export async function limitsBench(functionsDir: string, quick: boolean): Promise<LimitsBench> {
  const rounds = quick ? 10 : 40;
  const lines: string[] = [];
  const stack = await startStack({
    functionsDir,
    timeScale: 0.001,
    timers: false,
    env: { RECONCILE_GRACE_SECONDS: '0', REFUND_QUERY_DELAY_SECONDS: '0' },
    functionLog: (line) => lines.push(line),
  });
  const ctx = (openid: string): InvokeContext => ({
    OPENID: openid,
    APPID: stack.info.merchant.appid,
    SOURCE: 'wx_client',
  });
  /** The `limits` field of the createOrder log line for this order, among lines since `from`. */
  const limitsOf = (orderId: string, from: number): { dbRequests: number; dbMs: number } | null => {
    for (const line of lines.slice(from)) {
      if (!line.includes('"order.created"') || !line.includes(orderId)) continue;
      const at = line.indexOf('{');
      const entry = JSON.parse(line.slice(at)) as {
        orderId?: string;
        limits?: { dbRequests: number; dbMs: number };
      };
      if (entry.orderId === orderId && entry.limits) return entry.limits;
    }
    return null;
  };
  const create = async (openid: string, event: unknown) => {
    const from = lines.length;
    const r = await stack.runtime.invoke('createOrder', event, ctx(openid));
    const res = r.result as { ok: boolean; data?: { orderId: string }; error?: { code: string } };
    const orderId = res.ok ? res.data!.orderId : undefined;
    return { r, res, limits: orderId ? limitsOf(orderId, from) : null };
  };

  try {
    // Warm the pools (createOrder, listProducts) so cold starts stay out of the figures.
    await stack.runtime.invoke('listProducts', {}, ctx('o_bench_limits_warm'));
    await create('o_bench_limits_warm', cart(0));

    const totals: number[] = [];
    const limitsRequests: number[] = [];
    const durations: number[] = [];
    const limitsMs: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const openid = `o_bench_limits_${i}`;
      // A known caller: their limits document exists (the shop's home page lists products first).
      await stack.runtime.invoke('listProducts', {}, ctx(openid));
      const { r, res, limits } = await create(openid, cart(i));
      if (!res.ok || !limits) throw new Error(`createOrder failed: ${JSON.stringify(res.error)}`);
      totals.push(r.dbRequests);
      limitsRequests.push(limits.dbRequests);
      durations.push(r.durationMs);
      limitsMs.push(limits.dbMs);
    }

    const paths: PathCost[] = [];
    const record = (path: string, x: Awaited<ReturnType<typeof create>>) =>
      paths.push({
        path,
        dbRequests: x.r.dbRequests,
        limitsRequests: x.limits?.dbRequests ?? null,
        outcome: x.res.ok ? 'order' : `${x.res.error?.code}`,
      });
    record('normal (known caller, new cart)', await create('o_bench_limits_0', cart(500)));
    record("a caller's first call", await create('o_bench_limits_new', cart(1)));
    record('the same cart again', await create('o_bench_limits_new', cart(1)));
    const full = 'o_bench_limits_full';
    for (let i = 0; i < 10; i++) await create(full, cart(i));
    record('refused: 10 unpaid orders open', await create(full, cart(10)));
    for (let i = 0; i < 10; i++) await create(full, cart(20 + i));
    record('refused: 20 calls this minute', await create(full, cart(30)));

    const extra = Math.max(...limitsRequests);
    const result: LimitsBench = {
      rounds,
      normal: {
        dbRequests: totals,
        limitsRequests,
        createOrderP50Ms: round(median(durations)),
        createOrderP90Ms: round(percentile(durations, 90)),
        limitsDbP50Ms: round(median(limitsMs)),
        limitsDbP90Ms: round(percentile(limitsMs, 90)),
      },
      paths,
      target: {
        target: 'the per-caller limits add at most one database request to createOrder on the normal path',
        measured: `${extra} (createOrder ${Math.min(...totals)}–${Math.max(...totals)} requests in all); latency added p50 ${round(median(limitsMs))} ms of createOrder's ${round(median(durations))} ms`,
        met: extra <= 1,
      },
    };

    console.log(
      `\n== 7. Per-caller limits: what they add to createOrder (${rounds} calls, bundled build, through the runtime) ==`,
    );
    console.log(
      table([
        ['path', 'createOrder db requests', 'of which the limits', 'answer'],
        ...paths.map((p) => [p.path, p.dbRequests, p.limitsRequests ?? '-', p.outcome]),
      ]),
    );
    console.log(
      `  normal path: createOrder p50 ${result.normal.createOrderP50Ms} ms, p90 ${result.normal.createOrderP90Ms} ms; the limits' database wait p50 ${result.normal.limitsDbP50Ms} ms, p90 ${result.normal.limitsDbP90Ms} ms`,
    );
    console.log(
      `  target: ${result.target.target}: ${result.target.measured} → ${result.target.met ? 'met' : 'MISSED'}`,
    );
    mkdirSync(join(ROOT, '.data'), { recursive: true });
    writeFileSync(join(ROOT, '.data', 'bench-limits.json'), `${JSON.stringify(result, null, 2)}\n`);
    return result;
  } finally {
    await stack.close();
  }
}
