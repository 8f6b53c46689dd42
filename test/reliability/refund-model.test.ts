/**
 * Model-based test of the refund ledger. fast-check drives random sequences of what happens
 * to a shop's refunds:
 *   shoppers apply (sometimes twice with one requestId) and withdraw pending applications
 *   (double taps included), merchants approve, reject, resolve
 *   and retry (double clicks included); WeChat settles refunds SUCCESS, REFUNDCLOSE or CHANGE;
 *   notifies are delivered, dropped, duplicated or reordered; every refund error, timeouts
 *   before and after WeChat's effect, refundquery failing; function instances killed after
 *   any database request (before or after it landed); reconcile runs; the clock jumps.
 * After each "heal" (faults off, everything owed delivered, time passes, reconcile until
 * quiet) the books must agree with WeChat's ledger:
 *   - for every order, the refunds WeChat paid (SUCCESS, or CHANGE: money left the merchant)
 *     equal refundedFee, and reserved + refunded never exceed the total;
 *   - every refund's state agrees with its entry in the order's refund book, and the book's
 *     totals with the order's fields;
 *   - no refund WeChat paid is REJECTED, FAILED or CLOSED in our books, and each SUCCESS has
 *     exactly one payment_events entry.
 * The seed and the shortest failing sequence are printed on failure (RELIABILITY_SEED replays).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../cloudfunctions/shared/contract';
import type { OrderDoc, PaymentEventDoc, RefundDoc } from '../../cloudfunctions/shared/domain/model';
import { handlePayNotify, handleRefundNotify } from '../../cloudfunctions/shared/domain/notify';
import { createOrder } from '../../cloudfunctions/shared/domain/orders';
import { reconcile } from '../../cloudfunctions/shared/domain/reconcile';
import { applyRefund, approveRefund } from '../../cloudfunctions/shared/domain/refunds';
import { withdrawRefund } from '../../cloudfunctions/shared/domain/withdraw';
import type { Caller } from '../../cloudfunctions/shared/runtime/callable';
import { DEFAULT_FAULTS } from '../../sandbox/wxpay';
import { SEED, scaled, summary } from './support';
import { type Kill, MERCHANT, type Sent, startWorld, type World } from './world';

/** The world of the describe block running now (one per provider). */
let w: World;

const SHOPPERS = ['o_model_a', 'o_model_b'];
const ADMIN: Caller = {
  openid: 'o_admin',
  appid: MERCHANT.appid,
  clientIp: '127.0.0.1',
  source: 'wx_client',
};
const shopper = (openid: string): Caller => ({
  openid,
  appid: MERCHANT.appid,
  clientIp: '127.0.0.1',
  source: 'wx_client',
});
const QUIET = { ...DEFAULT_FAULTS, refundDelayMs: 365 * 24 * 3600_000 };

type Fault =
  | { kind: 'none' }
  | { kind: 'refundError'; code: string }
  | { kind: 'refundTimeout' }
  | { kind: 'refundHang' }
  | { kind: 'queryTimeout' }
  | { kind: 'systemError' };

interface Model {
  orders: { id: string; openid: string; total: number }[];
  refunds: { id: string; openid: string }[];
  submissions: { requestId: string; order: number; share: number }[];
}
interface Real {
  w: World;
}

const counts = {
  sequences: 0,
  commands: 0,
  heals: 0,
  kills: 0,
  applied: 0,
  refused: 0,
  settled: 0,
  notifies: 0,
  reconciles: 0,
};

const refusedCodes: Record<string, number> = {};
const outcomes: Record<string, number> = {};

async function withFault<T>(fault: Fault, run: () => Promise<T>): Promise<T> {
  switch (fault.kind) {
    case 'refundError':
      w.faults({ refundErrorQueue: [fault.code] });
      break;
    case 'refundTimeout':
      w.faults({ timeoutRate: { '/secapi/pay/refund': 1 } });
      break;
    case 'refundHang':
      w.faults({ hangAfterEffectRate: { '/secapi/pay/refund': 1 } });
      break;
    case 'queryTimeout':
      w.faults({ timeoutRate: { '/pay/refundquery': 1 } });
      break;
    case 'systemError':
      w.faults({ systemErrorNext: 1 });
      break;
  }
  try {
    return await run();
  } finally {
    w.faults({ refundErrorQueue: [], timeoutRate: 0, hangAfterEffectRate: 0, systemErrorNext: 0 });
  }
}

/** Runs one invocation; a kill or an answered error is part of life, anything else is a bug. */
async function invocation(
  kill: Kill | undefined,
  run: (deps: ReturnType<World['deps']>) => Promise<unknown>,
) {
  try {
    await run(w.deps(kill));
  } catch (e) {
    if ((e as Error).message === 'the function instance was killed') {
      counts.kills++;
      return;
    }
    const code = (e as { code?: string }).code;
    // What a callable answers the caller with; anything else (a broken invariant) is a bug.
    if (
      typeof code === 'string' &&
      ((ERROR_CODES as readonly string[]).includes(code) || code.startsWith('WXPAY_'))
    ) {
      counts.refused++;
      refusedCodes[code] = (refusedCodes[code] ?? 0) + 1;
      return;
    }
    throw e;
  }
}

const faultArb: fc.Arbitrary<Fault> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'none' } as const) },
  {
    weight: 3,
    arbitrary: fc
      .constantFrom(
        'NOTENOUGH',
        'USER_ACCOUNT_ABNORMAL',
        'TRADE_OVERDUE',
        'ERROR',
        'FREQUENCY_LIMITED',
        'INVALID_REQ_TOO_MUCH',
        'SYSTEMERROR',
        'BIZERR_NEED_RETRY',
      )
      .map((code) => ({ kind: 'refundError', code }) as const),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'refundTimeout' } as const) },
  { weight: 2, arbitrary: fc.constant({ kind: 'refundHang' } as const) },
  { weight: 1, arbitrary: fc.constant({ kind: 'queryTimeout' } as const) },
  { weight: 1, arbitrary: fc.constant({ kind: 'systemError' } as const) },
);
const killArb: fc.Arbitrary<Kill | undefined> = fc.oneof(
  { weight: 5, arbitrary: fc.constant(undefined) },
  {
    weight: 1,
    arbitrary: fc.record({ afterRequests: fc.integer({ min: 1, max: 7 }), landed: fc.boolean() }),
  },
);

class Apply implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly order: number,
    readonly share: number,
    readonly reuse: number | undefined,
    readonly kill: Kill | undefined,
  ) {}
  check = (m: Readonly<Model>) => m.orders.length > 0;
  async run(m: Model) {
    // A retry of an earlier submission sends exactly what that one sent.
    const earlier =
      this.reuse !== undefined && m.submissions.length > 0
        ? m.submissions[this.reuse % m.submissions.length]!
        : undefined;
    const o = m.orders[(earlier?.order ?? this.order) % m.orders.length]!;
    const share = earlier?.share ?? this.share;
    const requestId = earlier?.requestId ?? `model${m.submissions.length}${Math.floor(share * 1e6)}`;
    if (!earlier) m.submissions.push({ requestId, order: this.order, share });
    const refundFee = Math.max(1, Math.floor(o.total * share));
    await invocation(this.kill, async (deps) => {
      const out = await applyRefund(
        deps,
        { orderId: o.id, refundFee, reason: 'model', requestId },
        shopper(o.openid),
      );
      counts.applied++;
      if (!m.refunds.some((r) => r.id === out.refund.refundId))
        m.refunds.push({ id: out.refund.refundId, openid: o.openid });
    });
  }
  toString = () =>
    `apply(${this.order}, ${this.share.toFixed(2)}${this.reuse !== undefined ? ', same requestId' : ''}${this.kill ? `, killed@${this.kill.afterRequests}` : ''})`;
}

class Decide implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly refund: number,
    readonly decision: 'approve' | 'reject' | 'resolve',
    readonly clicks: number,
    readonly fault: Fault,
    readonly kill: Kill | undefined,
  ) {}
  check = (m: Readonly<Model>) => m.refunds.length > 0;
  async run(m: Model) {
    const r = m.refunds[this.refund % m.refunds.length]!;
    await withFault(this.fault, () =>
      Promise.all(
        Array.from({ length: this.clicks }, (_, i) =>
          invocation(i === 0 ? this.kill : undefined, async (deps) => {
            const out = await approveRefund(deps, { refundId: r.id, decision: this.decision }, ADMIN);
            const key = `${this.decision}→${out.refund.status}`;
            outcomes[key] = (outcomes[key] ?? 0) + 1;
            // A retried CLOSED refund answers with its successor.
            if (!m.refunds.some((x) => x.id === out.refund.refundId))
              m.refunds.push({ id: out.refund.refundId, openid: r.openid });
          }),
        ),
      ),
    );
  }
  toString = () =>
    `${this.decision}(${this.refund}${this.clicks > 1 ? ' ×2' : ''}, ${this.fault.kind === 'refundError' ? this.fault.code : this.fault.kind}${this.kill ? `, killed@${this.kill.afterRequests}${this.kill.landed ? '+' : '-'}` : ''})`;
}

class Withdraw implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly refund: number,
    readonly taps: number,
    readonly kill: Kill | undefined,
  ) {}
  check = (m: Readonly<Model>) => m.refunds.length > 0;
  async run(m: Model) {
    const r = m.refunds[this.refund % m.refunds.length]!;
    await Promise.all(
      Array.from({ length: this.taps }, (_, i) =>
        invocation(i === 0 ? this.kill : undefined, async (deps) => {
          const out = await withdrawRefund(deps, { refundId: r.id }, shopper(r.openid));
          const key = `withdraw→${out.refund.status}`;
          outcomes[key] = (outcomes[key] ?? 0) + 1;
        }),
      ),
    );
  }
  toString = () =>
    `withdraw(${this.refund}${this.taps > 1 ? ' ×2' : ''}${this.kill ? `, killed@${this.kill.afterRequests}${this.kill.landed ? '+' : '-'}` : ''})`;
}

class Settle implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly refund: number,
    readonly outcome: 'SUCCESS' | 'REFUNDCLOSE' | 'CHANGE',
  ) {}
  check = () => true;
  async run() {
    const processing = [...w.core.ledger.refunds.values()].filter((r) => r.status === 'PROCESSING');
    const r = processing[this.refund % Math.max(1, processing.length)];
    if (r && w.core.engine.settleOne(r.outRefundNo, this.outcome)) counts.settled++;
  }
  toString = () => `wechat settles(${this.refund}, ${this.outcome})`;
}

class Deliver implements fc.AsyncCommand<Model, Real> {
  constructor(readonly mode: 'all' | 'dropFirst' | 'duplicate' | 'reverse') {}
  check = () => true;
  async run() {
    const batch = w.outbox.splice(0, w.outbox.length);
    let list = batch;
    if (this.mode === 'dropFirst' && batch.length > 0) {
      // WeChat retries what was not acknowledged: a dropped one comes back later.
      w.outbox.push(batch[0]!);
      list = batch.slice(1);
    }
    if (this.mode === 'duplicate') list = [...batch, ...batch];
    if (this.mode === 'reverse') list = [...batch].reverse();
    for (const n of list) await deliver(n);
  }
  toString = () => `deliver notifies(${this.mode})`;
}

class Reconcile implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly fault: Fault,
    readonly kill: Kill | undefined,
  ) {}
  check = () => true;
  async run() {
    counts.reconciles++;
    await withFault(this.fault, () => invocation(this.kill, (deps) => reconcile(deps)));
  }
  toString = () => `reconcile(${this.fault.kind}${this.kill ? `, killed@${this.kill.afterRequests}` : ''})`;
}

class Clock implements fc.AsyncCommand<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  async run() {
    w.advance(this.ms);
  }
  toString = () => `clock +${Math.round(this.ms / 1000)} s`;
}

class Heal implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model) {
    await heal();
    await expectBooksAgree(m);
  }
  toString = () => 'heal and check';
}

async function deliver(n: Sent) {
  counts.notifies++;
  const deps = w.deps();
  const reply =
    n.kind === 'pay'
      ? await handlePayNotify(deps, w.delivery(n))
      : await handleRefundNotify(deps, w.delivery(n));
  // Not acknowledged: WeChat sends it again later.
  if (!reply.ok) w.outbox.push(n);
}

async function heal() {
  counts.heals++;
  w.faults(QUIET);
  for (let round = 0; round < 10; round++) {
    for (const n of w.outbox.splice(0, w.outbox.length)) await deliver(n);
    w.core.engine.settleAll();
    for (const n of w.outbox.splice(0, w.outbox.length)) await deliver(n);
    // Leases lapse, backoffs come due, WeChat's 1-minute rule is met.
    w.advance(3 * 24 * 3600_000);
    counts.reconciles++;
    const report = await reconcile(w.deps());
    // Faults are off: a step that fails now is a bug, not bad luck.
    expect(report.errors, 'reconcile steps failed while healing').toBe(0);
    for (const n of w.outbox.splice(0, w.outbox.length)) await deliver(n);
    const deps = w.deps();
    const _ = deps.store.cmd;
    const busy = await deps.store.find('refunds', { status: _.in(['APPROVED', 'PROCESSING']) }, { limit: 1 });
    const processingAtWx = [...w.core.ledger.refunds.values()].some((r) => r.status === 'PROCESSING');
    if (busy.length === 0 && !processingAtWx && w.outbox.length === 0) return;
  }
}

async function expectBooksAgree(m: Model) {
  const deps = w.deps();
  const _ = deps.store.cmd;
  const ids = m.orders.map((o) => o.id);
  const orders = await deps.store.find<OrderDoc>('orders', { _id: _.in(ids) }, { limit: 100 });
  const refunds = await deps.store.find<RefundDoc>('refunds', { orderId: _.in(ids) }, { limit: 100 });
  const events = await deps.store.find<PaymentEventDoc>('payment_events', { kind: 'refund' }, { limit: 100 });
  const wx = [...w.core.ledger.refunds.values()];
  for (const o of orders) {
    const paidAtWx = wx.filter(
      (r) => r.outTradeNo === o._id && (r.status === 'SUCCESS' || r.status === 'CHANGE'),
    );
    expect(o.refundedFee, `refundedFee of ${o._id}`).toBe(paidAtWx.reduce((a, r) => a + r.refundFee, 0));
    expect(o.refundUsedFee).toBe(o.refundReservedFee + o.refundedFee);
    expect(o.refundUsedFee).toBeLessThanOrEqual(o.totalFee);
    const book = Object.entries(o.refundBook ?? {});
    const reserved = book.filter(([, e]) => e.state === 'reserved');
    expect(o.refundReservedFee).toBe(reserved.reduce((a, [, e]) => a + e.fee, 0));
    expect(o.refundOpenCount ?? 0).toBe(reserved.length);
    for (const r of refunds.filter((x) => x.orderId === o._id)) {
      const entry = o.refundBook[r._id];
      const atWx = wx.find((x) => x.outRefundNo === r._id);
      const where = `${r._id} is ${r.status}, book ${entry?.state}, WeChat ${atWx?.status ?? 'none'}`;
      if (atWx?.status === 'SUCCESS') expect(r.status, where).toBe('SUCCESS');
      if (atWx?.status === 'CHANGE') expect(['ABNORMAL', 'SUCCESS'], where).toContain(r.status);
      if (atWx?.status === 'REFUNDCLOSE') expect(['CLOSED', 'REJECTED'], where).toContain(r.status);
      if (!atWx) expect(['PENDING_REVIEW', 'FAILED', 'REJECTED', 'WITHDRAWN'], where).toContain(r.status);
      // A withdrawal ends an application before the merchant reviewed it: it never reached WeChat.
      if (r.status === 'WITHDRAWN') expect(atWx, where).toBeUndefined();
      const expected =
        r.status === 'SUCCESS' || r.status === 'ABNORMAL'
          ? ['settled']
          : r.status === 'REJECTED' || r.status === 'WITHDRAWN'
            ? ['released']
            : r.status === 'CLOSED' && r.successorId
              ? ['moved']
              : ['reserved'];
      expect(expected, where).toContain(entry?.state);
      if (r.status === 'SUCCESS')
        expect(
          events.filter((e) => e._id === `${r._id}:SUCCESS`),
          where,
        ).toHaveLength(1);
    }
  }
}

async function setUpOrders(m: Model, n: number) {
  for (let i = 0; i < n; i++) {
    const openid = SHOPPERS[i % SHOPPERS.length]!;
    const deps = w.deps();
    // The catalogue: one product whose price gives the order a total to split.
    await deps.store.insert('products', {
      _id: `p${i}`,
      name: '茶',
      priceFen: 1000 + i * 1750,
      image: '',
      onSale: true,
      sort: i,
    });
    const created = await createOrder(
      w.deps(),
      { items: [{ productId: `p${i}`, quantity: 1 }] },
      shopper(openid),
    );
    // The order went through the world's provider (APIv3's paySign is RSA).
    expect(created.payment.signType === 'RSA').toBe(w.provider === 'v3');
    expect(w.core.engine.pay(created.payment as never).errMsg).toBe('requestPayment:ok');
    for (const note of w.outbox.splice(0, w.outbox.length)) await deliver(note);
    m.orders.push({ id: created.orderId, openid, total: created.totalFee });
  }
}

const apply = fc
  .tuple(
    fc.nat(),
    fc.double({ min: 0.01, max: 0.7, noNaN: true }),
    fc.option(fc.nat(), { nil: undefined }),
    killArb,
  )
  .map(([o, s, reuse, kill]) => new Apply(o, s, reuse, kill));
const decide = fc
  .tuple(
    fc.nat(),
    fc.constantFrom('approve', 'approve', 'approve', 'reject', 'resolve'),
    fc.constantFrom(1, 1, 2),
    faultArb,
    killArb,
  )
  .map(([r, d, c, f, k]) => new Decide(r, d as 'approve' | 'reject' | 'resolve', c, f, k));
const withdraw = fc
  .tuple(fc.nat(), fc.constantFrom(1, 1, 2), killArb)
  .map(([r, taps, k]) => new Withdraw(r, taps, k));
const settle = fc
  .tuple(fc.nat(), fc.constantFrom('SUCCESS', 'SUCCESS', 'REFUNDCLOSE', 'CHANGE'))
  .map(([r, o]) => new Settle(r, o as 'SUCCESS' | 'REFUNDCLOSE' | 'CHANGE'));
const commands = [
  apply,
  apply,
  decide,
  decide,
  decide,
  withdraw,
  settle,
  settle,
  fc
    .constantFrom('all', 'all', 'dropFirst', 'duplicate', 'reverse')
    .map((mode) => new Deliver(mode as 'all')),
  fc.tuple(faultArb, killArb).map(([f, k]) => new Reconcile(f, k)),
  fc.integer({ min: 1, max: 36 * 3600 }).map((s) => new Clock(s * 1000)),
  fc.constant(new Heal()),
];

// APIv2 runs the full count; APIv3 (the same domain through another transport: signed JSON,
// encrypted notifies, its own error codes and classes) a smaller one in npm test, the full
// one in the soak.
for (const [provider, fast, soak] of [
  ['v2', 25, 2000],
  ['v3', 10, 1000],
] as const) {
  describe(`refund ledger model on ${provider}`, () => {
    beforeAll(async () => {
      w = await startWorld({ provider });
      await w.reset();
    }, 120_000);
    afterAll(() => w?.close());

    it('keeps the books equal to WeChat’s ledger through random sequences, faults and kills', async () => {
      for (const k of Object.keys(counts)) counts[k as keyof typeof counts] = 0;
      for (const r of [refusedCodes, outcomes]) for (const k of Object.keys(r)) delete r[k];
      const runs = scaled(fast, soak);
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, { maxCommands: 40, size: 'large' }), async (cmds) => {
          counts.sequences++;
          await w.reset();
          const model: Model = { orders: [], refunds: [], submissions: [] };
          await setUpOrders(model, 2);
          await fc.asyncModelRun(() => ({ model, real: { w } }), cmds);
          counts.commands += [...cmds].length;
          await heal();
          await expectBooksAgree(model);
        }),
        { numRuns: runs, seed: SEED, verbose: 1 },
      );
      summary(`refund-model ${provider}`, {
        sequences: counts.sequences,
        commands: counts.commands,
        'heals checked': counts.heals,
        'applications made': counts.applied,
        'calls answered with an error code': counts.refused,
        'functions killed': counts.kills,
        'refunds settled at WeChat': counts.settled,
        'notifies delivered': counts.notifies,
        'reconcile runs': counts.reconciles,
        seed: SEED,
      });
      summary(`refund-model ${provider} answers`, refusedCodes);
      summary(`refund-model ${provider} decisions`, outcomes);
    }, 3_600_000);
  });
}
