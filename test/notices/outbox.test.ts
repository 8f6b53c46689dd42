/**
 * The notices outbox through the real wx-server-sdk (database and cloud call) and the
 * emulator. Fault model: duplicate and concurrent notifies of one transition, two reconcile
 * runs on one due notice, WeChat's transient errors and 43101, a send whose answer comes too
 * late or never, a database that fails. Each race is forced with a gate (a send held open) or a
 * barrier (two runs held after their read), never left to timing.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NotifyInput } from '../../cloudfunctions/shared/notices/outbox';
import {
  MIN_SEND_BUDGET_MS,
  NOTICE_TTL_MS,
  NOTICES_COLLECTION,
  notify,
  retryNotices,
  SEND_LEASE_MS,
} from '../../cloudfunctions/shared/notices/outbox';
import type { SubscribeMessage, SubscribeSend } from '../../cloudfunctions/shared/notices/send';
import { sdkSubscribeSender } from '../../cloudfunctions/shared/runtime/subscribe';
import type { Store } from '../../cloudfunctions/shared/store';
import { DEMO_SUBSCRIBE_TEMPLATES, DEMO_TEMPLATE_IDS as T } from '../../sandbox/notice-templates';
import { startTcbEmulator, type TcbEmulator } from '../../sandbox/tcb';
import { type Any, connectSdk } from '../emulator/sdk';
import { type LogLine, noticeDeps, outbox } from './support';

let emu: TcbEmulator;
let db: Any;
let real: SubscribeSend;
const T0 = Date.UTC(2025, 4, 1, 2, 0);
let clock = T0;
const now = () => clock;

beforeAll(async () => {
  emu = await startTcbEmulator({
    collections: [NOTICES_COLLECTION],
    subscribe: { templates: DEMO_SUBSCRIBE_TEMPLATES },
  });
  const sdk = connectSdk(emu.serviceUrl);
  db = sdk.db;
  real = sdkSubscribeSender(sdk.cloud);
});
afterAll(() => emu.close());

let seq = 0;
/** Fresh ids per test, so tests share the emulator without seeing each other's notices. */
let ids: { admins: string[]; shopper: string; order: string; refund: string };
beforeEach(async () => {
  // Each test starts with an empty outbox at 2025-05-01 10:00 Beijing time.
  clock = T0;
  await db
    .collection(NOTICES_COLLECTION)
    .where({ _id: db.command.exists(true) })
    .remove();
  seq++;
  ids = {
    admins: [`o_admin_a_${seq}`, `o_admin_b_${seq}`],
    shopper: `o_shopper_${seq}`,
    order: `O${seq}x20250501`,
    refund: `R${seq}x20250501`,
  };
  emu.subscribe.setFaults({ failNext: 0 });
});

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}
function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A sender that can be held open: calls enter, wait for release, then go to WeChat. */
function gated(inner: SubscribeSend) {
  const calls: SubscribeMessage[] = [];
  let gate: Deferred | null = null;
  const waiters: { n: number; d: Deferred }[] = [];
  const send: SubscribeSend = async (m) => {
    calls.push(m);
    for (const w of waiters) if (calls.length >= w.n) w.d.resolve();
    if (gate) await gate.promise;
    return inner(m);
  };
  return {
    send,
    calls,
    hold: () => {
      gate = deferred();
    },
    release: () => gate?.resolve(),
    /** Resolves once `n` sends have started. */
    entered: (n: number) => {
      const d = deferred();
      waiters.push({ n, d });
      if (calls.length >= n) d.resolve();
      return d.promise;
    },
  };
}

function paid(over: Partial<NotifyInput<'order_paid'>> = {}): NotifyInput<'order_paid'> {
  return {
    kind: 'order_paid',
    subject: ids.order,
    data: { orderId: ids.order, totalFee: 13600, product: '广式月饼礼盒 Mooncakes ×1', atMs: clock },
    ...over,
  };
}

function completed(): NotifyInput<'refund_completed'> {
  return {
    kind: 'refund_completed',
    subject: ids.refund,
    recipients: [ids.shopper],
    data: { refundId: ids.refund, orderId: ids.order, refundFee: 1250, status: 'SUCCESS', atMs: clock },
  };
}

const grantAdmins = (tpl: string, n: number) => {
  for (const a of ids.admins) emu.subscribe.grant(a, tpl, n);
};

describe('exactly once per transition', () => {
  it('50 duplicate notifies of one paid order give each admin one notice, while the first send is still in flight', async () => {
    grantAdmins(T.newOrder, 50);
    const g = gated(real);
    g.hold();
    const first = notify(noticeDeps({ db, send: g.send, now, admins: ids.admins }), paid());
    await g.entered(2);
    const duplicates = await Promise.all(
      Array.from({ length: 49 }, () =>
        notify(noticeDeps({ db, send: g.send, now, admins: ids.admins }), paid()),
      ),
    );
    expect(duplicates.every((d) => d.duplicate === 2 && d.written === 0)).toBe(true);
    g.release();
    expect(await first).toMatchObject({ written: 2, sent: 2 });

    expect(g.calls).toHaveLength(2);
    for (const admin of ids.admins) {
      const inbox = emu.subscribe.inbox(admin);
      expect(inbox).toHaveLength(1);
      expect(inbox[0]!.text).toContain(`订单编号：${ids.order}`);
      expect(emu.subscribe.acceptances(admin)[T.newOrder]).toBe(49);
    }
    const docs = (await outbox(db)).filter((d) => d.subject === ids.order);
    expect(docs.map((d) => [d.touser, d.status, d.attempts]).sort()).toEqual(
      ids.admins.map((a) => [a, 'SENT', 1]).sort(),
    );
  });

  it('50 duplicates fired at once still send one notice per admin', async () => {
    grantAdmins(T.newOrder, 50);
    const results = await Promise.all(
      Array.from({ length: 50 }, () =>
        notify(noticeDeps({ db, send: real, now, admins: ids.admins }), paid()),
      ),
    );
    expect(results.reduce((n, r) => n + r.sent, 0)).toBe(2);
    for (const admin of ids.admins) expect(emu.subscribe.inbox(admin)).toHaveLength(1);
  });

  it('two reconcile runs that both read one due notice send it once', async () => {
    grantAdmins(T.newOrder, 5);
    emu.subscribe.setFaults({ failNext: 1, errcode: -1, errmsg: 'system error' });
    await notify(noticeDeps({ db, send: real, now, admins: ids.admins.slice(0, 1) }), paid());
    clock += 61_000;

    // Both runs hold after reading the due notices, so both try to claim the same one.
    let arrived = 0;
    const bothRead = deferred();
    const pausingDeps = () => {
      const d = noticeDeps({ db, send: real, now, admins: ids.admins });
      const find = d.store.find.bind(d.store);
      d.store.find = (async (collection: string, where: Record<string, unknown>, o?: object) => {
        const rows = await find(collection, where, o);
        if (where['status'] === 'PENDING') {
          if (++arrived === 2) bothRead.resolve();
          await bothRead.promise;
        }
        return rows;
      }) as Store['find'];
      return d;
    };
    const [a, b] = await Promise.all([retryNotices(pausingDeps()), retryNotices(pausingDeps())]);
    expect(a.sent + b.sent).toBe(1);
    expect(a.skipped + b.skipped).toBe(1);
    expect(emu.subscribe.inbox(ids.admins[0]!)).toHaveLength(1);
  });
});

describe('failures', () => {
  it('a shopper who refused gets nothing; the outbox records 43101 once and reconcile leaves it', async () => {
    emu.subscribe.request(ids.shopper, [T.refundResult], 'reject');
    const r = await notify(noticeDeps({ db, send: real, now }), completed());
    expect(r).toMatchObject({ written: 1, failed: 1, sent: 0 });

    clock += 3600_000;
    expect(await retryNotices(noticeDeps({ db, send: real, now }))).toMatchObject({ sent: 0, failed: 0 });
    const [doc] = (await outbox(db)).filter((d) => d.subject === ids.refund);
    expect(doc).toMatchObject({ status: 'FAILED', errCode: 43101, attempts: 1 });
    expect(doc!.errMsg).toMatch(/^openapi\.subscribeMessage\.send:fail user refuse to accept the msg rid: /);
    expect(doc!.failures).toHaveLength(1);
    expect(emu.subscribe.inbox(ids.shopper)).toEqual([]);
  });

  it('a transient failure is delivered by a later reconcile, once, after its wait', async () => {
    emu.subscribe.request(ids.shopper, [T.refundResult], 'accept');
    emu.subscribe.setFaults({ failNext: 1, errcode: -1, errmsg: 'system error' });
    expect(await notify(noticeDeps({ db, send: real, now }), completed())).toMatchObject({ pending: 1 });
    const [doc] = (await outbox(db)).filter((d) => d.subject === ids.refund);
    expect(doc).toMatchObject({ status: 'PENDING', errCode: -1, nextAttemptAtMs: clock + 60_000 });

    expect(await retryNotices(noticeDeps({ db, send: real, now }))).toMatchObject({ sent: 0 });
    clock += 60_000;
    expect(await retryNotices(noticeDeps({ db, send: real, now }))).toMatchObject({ sent: 1 });
    clock += 3600_000;
    expect(await retryNotices(noticeDeps({ db, send: real, now }))).toMatchObject({ sent: 0 });

    const inbox = emu.subscribe.inbox(ids.shopper);
    expect(inbox).toHaveLength(1);
    expect(inbox[0]!.text).toBe(
      `退款结果通知\n订单编号：${ids.order}\n退款金额：12.50元\n退款状态：退款完成\n说明：款项已原路退回\n到账时间：2025年5月1日 10:00`,
    );
    const [sent] = (await outbox(db)).filter((d) => d.subject === ids.refund);
    expect(sent).toMatchObject({ status: 'SENT', attempts: 2, sentAtMs: clock - 3600_000 });
    expect(sent!.failures).toHaveLength(1);
  });

  it('stops retrying a day after the transition', async () => {
    emu.subscribe.request(ids.shopper, [T.refundResult], 'accept');
    emu.subscribe.setFaults({ failNext: 1000, errcode: 45009, errmsg: 'reach max api daily quota limit' });
    const start = clock;
    await notify(noticeDeps({ db, send: real, now }), completed());
    let attempts = 1;
    for (;;) {
      const [doc] = (await outbox(db)).filter((d) => d.subject === ids.refund);
      if (doc!.status !== 'PENDING') {
        expect(doc!.status).toBe('FAILED');
        expect(doc!.errCode).toBe(45009);
        break;
      }
      clock = doc!.nextAttemptAtMs;
      await retryNotices(noticeDeps({ db, send: real, now }));
      attempts++;
      expect(attempts).toBeLessThan(20);
    }
    expect(clock - start).toBeLessThanOrEqual(NOTICE_TTL_MS);
    expect(attempts).toBeGreaterThan(5);
    emu.subscribe.setFaults({ failNext: 0 });
    clock += NOTICE_TTL_MS;
    await retryNotices(noticeDeps({ db, send: real, now }));
    expect(emu.subscribe.inbox(ids.shopper)).toEqual([]);
  });

  it('a send that outlives its budget is never sent again; its late answer is still recorded', async () => {
    emu.subscribe.request(ids.shopper, [T.refundResult], 'accept');
    emu.subscribe.request(ids.shopper, [T.refundResult], 'accept');
    const g = gated(real);
    g.hold();
    const r = await notify(noticeDeps({ db, send: g.send, now }), completed(), {
      budgetMs: MIN_SEND_BUDGET_MS,
    });
    expect(r).toMatchObject({ written: 1, unknown: 1 });

    clock += SEND_LEASE_MS + 1;
    expect(await retryNotices(noticeDeps({ db, send: g.send, now }))).toMatchObject({ unknown: 1, sent: 0 });
    clock += 3600_000;
    await retryNotices(noticeDeps({ db, send: g.send, now }));
    expect(g.calls).toHaveLength(1);
    expect((await outbox(db)).find((d) => d.subject === ids.refund)).toMatchObject({ status: 'UNKNOWN' });

    g.release();
    for (let i = 0; i < 100; i++) {
      if ((await outbox(db)).find((d) => d.subject === ids.refund)?.status === 'SENT') break;
      await new Promise((res) => setTimeout(res, 20));
    }
    expect((await outbox(db)).find((d) => d.subject === ids.refund)).toMatchObject({
      status: 'SENT',
      attempts: 1,
    });
    expect(emu.subscribe.inbox(ids.shopper)).toHaveLength(1);
  });
});

describe('never in the way of the money path', () => {
  it('with too little time left to send, writes the notice for reconcile instead of starting a send', async () => {
    emu.subscribe.request(ids.shopper, [T.refundResult], 'accept');
    const g = gated(real);
    const r = await notify(noticeDeps({ db, send: g.send, now }), completed(), {
      budgetMs: MIN_SEND_BUDGET_MS - 1,
    });
    expect(r).toMatchObject({ written: 1, pending: 1, sent: 0 });
    expect(g.calls).toEqual([]);
    expect(await retryNotices(noticeDeps({ db, send: real, now }))).toMatchObject({ sent: 1 });
    expect(emu.subscribe.inbox(ids.shopper)).toHaveLength(1);
  });

  it('resolves, with the error counted, when the database fails', async () => {
    const logs: LogLine[] = [];
    const broken = {
      command: db.command,
      collection: () => ({ add: () => Promise.reject(new Error('db down')) }),
    };
    const r = await notify(noticeDeps({ db: broken, send: real, now, logs }), completed());
    expect(r).toMatchObject({ errors: 1, sent: 0 });
    expect(logs.some((l) => l.event === 'notice.error')).toBe(true);
  });

  it('resolves when the sender itself throws, keeping the notice for reconcile', async () => {
    emu.subscribe.request(ids.shopper, [T.refundResult], 'accept');
    const throwing: SubscribeSend = () =>
      Promise.reject(Object.assign(new Error('boom'), { errCode: -501001 }));
    expect(await notify(noticeDeps({ db, send: throwing, now }), completed())).toMatchObject({ pending: 1 });
    clock += 60_000;
    expect(await retryNotices(noticeDeps({ db, send: real, now }))).toMatchObject({ sent: 1 });
  });

  it('does nothing for a kind the merchant has not configured', async () => {
    const r = await notify(noticeDeps({ db, send: real, now, env: {} }), completed());
    expect(r.off).toBe(true);
    expect((await outbox(db)).filter((d) => d.subject === ids.refund)).toEqual([]);
  });

  it('writes nothing for a shopper notice without its shopper', async () => {
    const r = await notify(noticeDeps({ db, send: real, now }), { ...completed(), recipients: [] });
    expect(r.written).toBe(0);
    expect((await outbox(db)).filter((d) => d.subject === ids.refund)).toEqual([]);
  });

  it('in a function without the send permission, writes the notice for reconcile to send', async () => {
    grantAdmins(T.newOrder, 1);
    const r = await notify(noticeDeps({ db, send: undefined, now, admins: ids.admins }), paid());
    expect(r).toMatchObject({ written: 2, pending: 2 });
    expect(await retryNotices(noticeDeps({ db, send: real, now, admins: ids.admins }))).toMatchObject({
      sent: 2,
    });
    for (const admin of ids.admins) expect(emu.subscribe.inbox(admin)).toHaveLength(1);
  });
});

describe('a notice of a kind the writing function holds no template for', () => {
  it('is written deferred, then rendered and sent once by reconcile with its own template', async () => {
    emu.subscribe.request(ids.shopper, [T.refundResult], 'accept');
    const writer = noticeDeps({ db, send: real, now, kinds: ['refund_approved'] });
    expect(await notify(writer, completed())).toMatchObject({ written: 1, deferred: 1, pending: 1, sent: 0 });
    const [doc] = (await outbox(db)).filter((d) => d.subject === ids.refund);
    expect(doc).toMatchObject({ status: 'PENDING', deferred: true, templateId: '', data: {} });
    expect(doc!.facts).toMatchObject({ refundId: ids.refund, refundFee: 1250 });
    // A second write of the same change finds it, deferred or not.
    expect(await notify(noticeDeps({ db, send: real, now }), completed())).toMatchObject({ duplicate: 1 });

    clock += 5 * 60_000;
    expect(await retryNotices(noticeDeps({ db, send: real, now }))).toMatchObject({ sent: 1 });
    expect(await retryNotices(noticeDeps({ db, send: real, now }))).toMatchObject({ sent: 0 });
    const inbox = emu.subscribe.inbox(ids.shopper);
    expect(inbox.map((m) => m.text)).toEqual([
      `退款结果通知\n订单编号：${ids.order}\n退款金额：12.50元\n退款状态：退款完成\n说明：款项已原路退回\n到账时间：2025年5月1日 10:00`,
    ]);
    const [sent] = (await outbox(db)).filter((d) => d.subject === ids.refund);
    expect(sent).toMatchObject({ status: 'SENT', templateId: T.refundResult, attempts: 1 });
    expect(sent!.deferred).toBeUndefined();
    expect(sent!.facts).toBeUndefined();
  });

  it('is given up, not sent, when reconcile has no template for it either', async () => {
    await notify(noticeDeps({ db, send: real, now, kinds: [] }), completed());
    const summary = await retryNotices(noticeDeps({ db, send: real, now, env: {} }));
    expect(summary).toMatchObject({ sent: 0, failed: 1 });
    const [doc] = (await outbox(db)).filter((d) => d.subject === ids.refund);
    expect(doc).toMatchObject({
      status: 'FAILED',
      errMsg: 'not sent: reconcile has no template for refund_completed',
    });
    expect(emu.subscribe.inbox(ids.shopper)).toEqual([]);
  });
});

describe('in the sandbox’s scaled time', () => {
  it('waits the scaled backoff and gives up after the scaled day', async () => {
    emu.subscribe.request(ids.shopper, [T.refundResult], 'accept');
    emu.subscribe.setFaults({ failNext: 1, errcode: -1, errmsg: 'system error' });
    const scaled = () => noticeDeps({ db, send: real, now, timeScale: 0.001 });
    await notify(scaled(), completed());
    const [doc] = (await outbox(db)).filter((d) => d.subject === ids.refund);
    expect(doc).toMatchObject({
      status: 'PENDING',
      nextAttemptAtMs: clock + 60,
      expiresAtMs: clock + NOTICE_TTL_MS / 1000,
    });
    clock += 60;
    expect(await retryNotices(scaled())).toMatchObject({ sent: 1 });
  });
});

describe('what the merchant sees', () => {
  it('a long product name with emoji arrives cut to the template’s 20 characters', async () => {
    grantAdmins(T.newOrder, 1);
    await notify(
      noticeDeps({ db, send: real, now, admins: ids.admins.slice(0, 1) }),
      paid({
        data: {
          orderId: ids.order,
          totalFee: 1,
          product: '🎁🎁 中秋特惠 广式月饼礼盒 Mooncakes 八只装 ×3',
          atMs: Date.UTC(2025, 8, 6, 16, 5),
        },
      }),
    );
    const [msg] = emu.subscribe.inbox(ids.admins[0]!);
    expect(msg!.data).toEqual({
      character_string1: ids.order,
      thing2: '🎁🎁 中秋特惠 广式月饼礼盒 Mo…',
      amount3: '0.01元',
      time4: '2025年9月7日 00:05',
    });
    // 20 UTF-16 units: an emoji counts as two, so WeChat takes it however it counts.
    expect(msg!.data['thing2']!.length).toBe(20);
    expect(msg!.page).toBe('pages/admin-refunds/index');
  });
});
