/**
 * Shared pieces of the reliability suite: counts that SOAK=1 raises, the one summary line
 * every test prints, database snapshots, reconcile-until-quiet and a copy of the built
 * functions with short timeouts (so a hung WeChat call gets its instance killed quickly).
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OrderDoc, PaymentEventDoc, RefundDoc } from '../../cloudfunctions/shared/domain/model';
import { ROOT, type Stack } from '../../sandbox/stack';

export const SOAK = process.env['SOAK'] === '1';

/** The fast count under `npm test`, the large one under `npm run test:soak`. */
export function scaled(fast: number, soak: number): number {
  return SOAK ? soak : fast;
}

/** The single line per test that says what was tried and what held. */
export function summary(name: string, figures: Record<string, number | string>): void {
  const parts = Object.entries(figures).map(([k, v]) => `${v} ${k}`);
  console.log(`[reliability] ${name}: ${parts.join(', ')}`);
}

/** A small deterministic PRNG (mulberry32), so a failing campaign can be replayed by seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const SEED = Number(process.env['RELIABILITY_SEED'] ?? 20260101);

export function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

export interface DbState {
  orders: OrderDoc[];
  refunds: RefundDoc[];
  events: PaymentEventDoc[];
}

export async function dbState(stack: Stack): Promise<DbState> {
  const byId = <T extends { _id: string }>(rows: T[]) => rows.sort((a, b) => (a._id < b._id ? -1 : 1));
  return {
    orders: byId(await stack.db.all<OrderDoc>('orders')),
    refunds: byId(await stack.db.all<RefundDoc>('refunds')),
    events: byId(await stack.db.all<PaymentEventDoc>('payment_events')),
  };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Runs `tasks` with at most `limit` in flight. */
export async function pool<T>(limit: number, tasks: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return out;
}

export const TIMER_EVENT = () => ({
  Type: 'Timer',
  TriggerName: 'reconcileEvery5Min',
  Time: new Date().toISOString(),
});

export async function runReconcile(stack: Stack): Promise<Record<string, number> | null> {
  const out = await stack.runtime.invoke('reconcile', TIMER_EVENT(), { SOURCE: 'wx_trigger' });
  return (out.result as Record<string, number> | null) ?? null;
}

/**
 * "Let time pass" for the sandbox, whose WeChat side runs on the wall clock: leases of
 * refunds whose submitter died expire, and unpaid orders pass their expiry and the 5 minutes
 * WeChat wants before closeorder. Only documents reconcile would look at are touched.
 */
export async function driveTime(stack: Stack): Promise<void> {
  const _ = stack.db.command;
  const past = Date.now() - 10 * 60_000;
  await stack.db.raw
    .collection('refunds')
    .where({ status: 'APPROVED', leaseUntilMs: _.gt(0) })
    .update({ leaseUntilMs: 0 });
  // Everything reconcile scheduled for later is due now.
  await stack.db.raw
    .collection('refunds')
    .where({ nextCheckAtMs: _.gt(0) })
    .update({ nextCheckAtMs: past });
  await stack.db.raw
    .collection('orders')
    .where({ status: 'NOTPAY' })
    .update({ createdAtMs: past - 60_000, expiresAtMs: past, nextCheckAtMs: past });
  await stack.db.raw
    .collection('orders')
    .where({ reservationCheckAtMs: _.gt(0) })
    .update({ reservationCheckAtMs: past });
}

/**
 * What the merchant's timer and WeChat do over the following hours, compressed: settle
 * refunds, deliver owed notifies, reconcile, let leases and expiries lapse, until nothing
 * is left to do. Returns the number of reconcile runs.
 */
export async function healUntilQuiet(stack: Stack, maxRounds = 12): Promise<number> {
  let runs = 0;
  for (let round = 0; round < maxRounds; round++) {
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    await driveTime(stack);
    const report = await runReconcile(stack);
    runs++;
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    const _ = stack.db.command;
    const open =
      (await stack.db.count('orders', { status: 'NOTPAY' })) +
      (await stack.db.count('refunds', { status: _.in(['APPROVED', 'PROCESSING']) }));
    const busy = report
      ? (report['ordersPaid'] ?? 0) +
        (report['ordersClosed'] ?? 0) +
        (report['refundsSubmitted'] ?? 0) +
        (report['refundsFinalized'] ?? 0)
      : 1;
    if (open === 0 && busy === 0) return runs;
  }
  return runs;
}

/**
 * A copy of dist/cloudfunctions with shorter config.json timeouts. The runtime enforces a
 * function's timeout by killing its instance process, which is how a process dies between a
 * WeChat call that took effect and the database write that should follow it.
 */
export function functionsWithTimeouts(timeouts: Record<string, number>): string {
  const dir = mkdtempSync(join(tmpdir(), 'reliability-fns-'));
  cpSync(join(ROOT, 'dist', 'cloudfunctions'), dir, { recursive: true });
  for (const [fn, seconds] of Object.entries(timeouts)) {
    const file = join(dir, fn, 'config.json');
    const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...config, timeout: seconds }));
  }
  return dir;
}
