/**
 * A randomized campaign of shoppers, payments and refunds under WeChat-side faults (dropped,
 * delayed, duplicated, reordered notifies; SYSTEMERROR and timeouts; refunds ending CHANGE or
 * REFUNDCLOSE; NOTENOUGH) and process faults (WeChat takes effect, the answer never comes,
 * and the runtime kills the function at its timeout before its database write). Then time
 * passes (reconcile until quiet), and the books must agree with WeChat to the fen: trade by
 * trade, against WeChat's bill, and by the shop's own bill check (对账) of every day the
 * campaign traded on. On each provider: APIv2 with the full count, APIv3 and cloudPay with a
 * sample of it (half the shoppers in npm test, the full count in the soak).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderDoc, RefundDoc } from '../../cloudfunctions/shared/domain/model';
import type { ProviderName } from '../../cloudfunctions/shared/providers/port';
import { createWxPayClient, nonceStr, parseBill } from '../../cloudfunctions/shared/wxpay';
import type { Stack } from '../../sandbox/stack';
import { billDate } from '../../sandbox/wxpay/time';
import { ADMIN, newRequestId, testStack, unwrap } from '../integration/support';
import { functionsWithTimeouts, healUntilQuiet, pick, pool, prng, SEED, scaled, summary } from './support';

const PRODUCTS = ['tea-longjing', 'chopsticks', 'sticker'];

/**
 * WeChat's bill of a day, as the merchant downloads it: the merchant's own (APIv2 and APIv3
 * orders), or cloudPay's sub-merchant bill through the platform.
 */
async function billOf(stack: Stack, date: string): Promise<string> {
  if (stack.info.provider === 'cloudpay') {
    const answer = stack.simulator.cloudPay({
      apiName: 'downloadBill',
      data: {
        sub_mch_id: stack.info.cloudPay!.subMchId,
        nonce_str: nonceStr(16),
        bill_date: date,
        bill_type: 'ALL',
      },
    });
    if (!('text' in answer)) throw new Error(`no cloudPay bill for ${date}: ${JSON.stringify(answer)}`);
    return answer.text;
  }
  const m = stack.info.merchant;
  const client = createWxPayClient({
    appid: m.appid,
    mchId: m.mchid,
    apiKey: m.apiKey,
    signType: m.signType,
    baseUrl: stack.info.wxpayBaseUrl,
    caPem: readFileSync(stack.info.caCertPath, 'utf8'),
  });
  return client.downloadBill({ bill_date: date, bill_type: 'ALL' });
}

for (const [provider, fast, soak] of [
  ['v2', 12, 240],
  ['v3', 6, 240],
  ['cloudpay', 6, 240],
] as [ProviderName, number, number][]) {
  describe(`fault campaign on ${provider}`, () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await testStack({
        provider,
        // Short timeouts: a call whose answer hangs gets its instance killed in seconds.
        functionsDir: functionsWithTimeouts({
          createOrder: 3,
          approveRefund: 3,
          queryOrder: 3,
          reconcile: 10,
        }),
        env: { WXPAY_TIMEOUT_MS: '800', ORDER_EXPIRE_MINUTES: '5' },
        functionLog: () => {},
      });
    });
    afterAll(() => stack?.close());

    it('loses, doubles and misdirects no payment or refund under random faults', async () => {
      const rand = prng(SEED + 1);
      const orders = scaled(fast, soak);
      const figures = { kills: 0, functionErrors: 0, faultBatches: 0, refundApplications: 0, reviews: 0 };

      const invoke = async (fn: string, event: Record<string, unknown>, openid: string) => {
        const out = await stack.runtime.invoke(fn, event, {
          OPENID: openid,
          APPID: stack.info.merchant.appid,
          SOURCE: 'wx_client',
        });
        if (out.error?.code === 'FUNCTION_TIMEOUT') figures.kills++;
        else if (out.error) figures.functionErrors++;
        return out.result as { ok: boolean; data?: Record<string, unknown> } | null;
      };

      async function shopper(i: number): Promise<void> {
        const openid = `o_campaign_${i}`;
        const product = pick(rand, PRODUCTS);
        let created = await invoke(
          'createOrder',
          { items: [{ productId: product, quantity: 1 + Math.floor(rand() * 3) }] },
          openid,
        );
        // A failed or killed createOrder leaves a NOTPAY order (or none): find it as the app would.
        for (let retry = 0; retry < 2 && !created?.ok; retry++) {
          const list = await invoke('listOrders', { status: 'NOTPAY' }, openid);
          const items = (list?.data?.['items'] as { orderId: string }[] | undefined) ?? [];
          if (items.length === 0) return;
          created = await invoke('createOrder', { orderId: items[0]!.orderId }, openid);
        }
        if (!created?.ok) return;
        const { orderId, totalFee, payment } = created.data as {
          orderId: string;
          totalFee: number;
          payment: Record<string, unknown>;
        };
        const outcome = pick(rand, [
          'SUCCESS',
          'SUCCESS',
          'SUCCESS',
          'SUCCESS',
          'SUCCESS',
          'CANCEL',
          'FAIL',
        ] as const);
        if (stack.simulator.pay(payment, outcome).errMsg !== 'requestPayment:ok') return;
        // The app confirms the payment with queryOrder (orderquery when the notify is late).
        const q = await invoke('queryOrder', { orderId }, openid);
        if ((q?.data?.['order'] as { status?: string } | undefined)?.status !== 'PAID') return;
        const wantRefunds = Math.floor(rand() * 4);
        const applied = await Promise.all(
          Array.from({ length: wantRefunds }, () =>
            invoke(
              'applyRefund',
              {
                orderId,
                refundFee: 1 + Math.floor(rand() * (totalFee / 2)),
                reason: 'campaign',
                requestId: newRequestId(),
              },
              openid,
            ),
          ),
        );
        figures.refundApplications += applied.length;
        await Promise.all(
          applied
            .filter((a) => a?.ok)
            .map(async (a) => {
              const refundId = (a!.data!['refund'] as { refundId: string }).refundId;
              const decision = rand() < 0.75 ? 'approve' : 'reject';
              const clicks = rand() < 0.3 ? 2 : 1;
              figures.reviews += clicks;
              await Promise.all(
                Array.from({ length: clicks }, () => invoke('approveRefund', { refundId, decision }, ADMIN)),
              );
            }),
        );
      }

      const batch = 4;
      for (let start = 0; start < orders; start += batch) {
        figures.faultBatches++;
        stack.simulator.setFaults({
          systemErrorRate: rand() < 0.5 ? 0.15 : 0,
          timeoutRate:
            rand() < 0.4
              ? { '/pay/unifiedorder': 0.1, '/secapi/pay/refund': 0.1, '/pay/orderquery': 0.1 }
              : 0,
          // The first batch always loses every refund answer after WeChat accepted it (the
          // approving function is killed before its write); later batches at random.
          hangAfterEffectRate:
            start === 0
              ? { '/pay/unifiedorder': 0.2, '/secapi/pay/refund': 1 }
              : rand() < 0.6
                ? { '/pay/unifiedorder': 0.1, '/secapi/pay/refund': 0.25 }
                : 0,
          dropPayNotifies: rand() < 0.5,
          dropRefundNotifies: rand() < 0.5,
          duplicateNotifies: Math.floor(rand() * 3),
          reorderNotifies: rand() < 0.3,
          notifyDelayMs: Math.floor(rand() * 50),
          refundOutcome: pick(rand, ['SUCCESS', 'SUCCESS', 'SUCCESS', 'REFUNDCLOSE', 'CHANGE'] as const),
          refundError: rand() < 0.1 ? 'NOTENOUGH' : null,
          refundDelayMs: 0,
        });
        await pool(
          batch,
          Array.from({ length: Math.min(batch, orders - start) }, (_, k) => () => shopper(start + k)),
        );
        // Some refunds finish while faults are still on (their notifies dropped, duplicated…).
        if (rand() < 0.5) stack.simulator.settleRefunds();
      }

      // Faults off; what WeChat still owes is delivered; the timer runs until nothing is left.
      stack.simulator.setFaults({
        systemErrorRate: 0,
        timeoutRate: 0,
        hangAfterEffectRate: 0,
        dropPayNotifies: false,
        dropRefundNotifies: false,
        duplicateNotifies: 0,
        reorderNotifies: false,
        notifyDelayMs: 0,
        refundError: null,
      });
      const reconcileRuns = await healUntilQuiet(stack);

      // --- the books against WeChat ---
      const ledger = stack.simulator.ledger();
      const dbOrders = await stack.db.all<OrderDoc>('orders');
      const dbRefunds = await stack.db.all<RefundDoc>('refunds');
      const problems: string[] = [];
      const simOrder = new Map(ledger.orders.map((o) => [o.outTradeNo, o]));
      const paidAtWx = ledger.orders.filter((o) => o.tradeState === 'SUCCESS' || o.tradeState === 'REFUND');
      for (const o of paidAtWx) {
        const d = dbOrders.find((x) => x._id === o.outTradeNo);
        if (d?.status !== 'PAID')
          problems.push(`paid at WeChat, ${d?.status ?? 'missing'} here: ${o.outTradeNo}`);
        else if (d.totalFee !== o.totalFee || d.transactionId !== o.transactionId)
          problems.push(`paid order differs from WeChat: ${o.outTradeNo}`);
      }
      for (const d of dbOrders) {
        const o = simOrder.get(d._id);
        if (d.status === 'PAID' && !(o?.tradeState === 'SUCCESS' || o?.tradeState === 'REFUND'))
          problems.push(`PAID here, not paid at WeChat: ${d._id}`);
        if (d.status === 'NOTPAY') problems.push(`still NOTPAY after reconcile: ${d._id}`);
      }
      const events = await stack.db.all<{ _id: string; kind: string; to: string; orderId: string }>(
        'payment_events',
      );
      const paidEvents = events.filter((e) => e.kind === 'order' && e.to === 'PAID');
      if (paidEvents.length !== dbOrders.filter((o) => o.status === 'PAID').length)
        problems.push(
          `${paidEvents.length} PAID events for ${dbOrders.filter((o) => o.status === 'PAID').length} paid orders`,
        );

      // Our state for each of WeChat's final words: money returned (SUCCESS), money that left
      // the merchant but did not arrive (CHANGE → ABNORMAL), nothing moved (REFUNDCLOSE → CLOSED,
      // or REJECTED once the merchant gave up on it).
      const ours: Record<string, string[]> = {
        SUCCESS: ['SUCCESS'],
        CHANGE: ['ABNORMAL'],
        REFUNDCLOSE: ['CLOSED', 'REJECTED'],
      };
      const simRefund = new Map(ledger.refunds.map((r) => [r.outRefundNo, r]));
      for (const r of dbRefunds) {
        const w = simRefund.get(r._id);
        if (!['SUCCESS', 'FAILED', 'REJECTED', 'PENDING_REVIEW', 'CLOSED', 'ABNORMAL'].includes(r.status))
          problems.push(`refund not final: ${r._id} ${r.status}`);
        if (r.status === 'PENDING_REVIEW' && r.reviewedAtMs !== undefined)
          problems.push(`reviewed yet pending: ${r._id}`);
        if (w && !ours[w.status]?.includes(r.status))
          problems.push(`${w.status} at WeChat, ${r.status} here: ${r._id}`);
        if (!w && ['SUCCESS', 'ABNORMAL', 'CLOSED', 'PROCESSING'].includes(r.status))
          problems.push(`${r.status} here, unknown at WeChat: ${r._id}`);
        if (w && (w.refundFee !== r.refundFee || w.outTradeNo !== r.orderId))
          problems.push(`refund misdirected: ${r._id}`);
      }
      for (const w of ledger.refunds)
        if (!dbRefunds.some((r) => r._id === w.outRefundNo))
          problems.push(`unknown refund at WeChat: ${w.outRefundNo}`);
      for (const d of dbOrders) {
        const mine = dbRefunds.filter((r) => r.orderId === d._id);
        const sum = (s: string[]) =>
          mine.filter((r) => s.includes(r.status)).reduce((a, r) => a + r.refundFee, 0);
        const refunded = sum(['SUCCESS', 'ABNORMAL']);
        // A CLOSED refund keeps its amount reserved until it is retried (its successor holds
        // it then) or rejected.
        const reserved =
          sum(['PENDING_REVIEW', 'APPROVED', 'PROCESSING', 'FAILED']) +
          mine.filter((r) => r.status === 'CLOSED' && !r.successorId).reduce((a, r) => a + r.refundFee, 0);
        const atWx = ledger.refunds
          .filter((w) => w.outTradeNo === d._id && (w.status === 'SUCCESS' || w.status === 'CHANGE'))
          .reduce((a, w) => a + w.refundFee, 0);
        if (refunded > d.totalFee) problems.push(`refunded more than paid: ${d._id}`);
        if (
          d.refundedFee !== refunded ||
          d.refundReservedFee !== reserved ||
          d.refundUsedFee !== refunded + reserved
        )
          problems.push(
            `bookkeeping off on ${d._id}: ${d.refundedFee}/${d.refundReservedFee}/${d.refundUsedFee} vs ${refunded}/${reserved}`,
          );
        if (atWx !== refunded) problems.push(`refunded ${refunded} here, ${atWx} at WeChat: ${d._id}`);
      }

      // --- and against WeChat's own bill ---
      const dates = new Set([
        ...paidAtWx.map((o) => billDate(o.paidAtMs!)),
        ...ledger.refunds.map((r) => billDate(r.createdAtMs)),
      ]);
      // Bills of a day exist from 10:00 the next day: let WeChat's clock run to then.
      stack.simulator.setClockOffset(34 * 3600_000);
      const billPaid = new Map<string, number>();
      const billRefunded = new Map<string, number>();
      let billRows = 0;
      for (const date of dates) {
        const bill = parseBill(await billOf(stack, date));
        for (const row of bill.rows) {
          billRows++;
          const id = row['商户订单号']!;
          const fen = (y: string) => Math.round(Number(y) * 100);
          if (row['交易状态'] === 'SUCCESS')
            billPaid.set(id, (billPaid.get(id) ?? 0) + fen(row['应结订单金额']!));
          else if (row['退款状态'] === 'SUCCESS' || row['退款状态'] === 'CHANGE')
            billRefunded.set(id, (billRefunded.get(id) ?? 0) + fen(row['退款金额']!));
        }
      }
      for (const d of dbOrders) {
        const paid = d.status === 'PAID' ? d.totalFee : 0;
        if ((billPaid.get(d._id) ?? 0) !== paid)
          problems.push(`bill says paid ${billPaid.get(d._id) ?? 0}, books ${paid}: ${d._id}`);
        if ((billRefunded.get(d._id) ?? 0) !== d.refundedFee)
          problems.push(
            `bill says refunded ${billRefunded.get(d._id) ?? 0}, books ${d.refundedFee}: ${d._id}`,
          );
      }

      // --- and by the shop's own bill check of every day, as the merchant runs it ---
      // Zero differences, and nothing left for it to book: after the heal, notifies and
      // reconcile have made the books equal to WeChat's, so any difference or fix is a bug. No
      // kind is explained away. A day boundary would be the one candidate (a payment at 23:59:59
      // whose notify lands after midnight; a refund applied for at WeChat just before midnight
      // and accepted here just after), and the check itself handles it: bookings up to 2 h after
      // midnight are looked for in the day before, a PAID order missing from a day's bill is
      // judged by orderquery's time_end, and a refund only by a day it was both created and
      // accepted in. So a campaign that crosses midnight still expects zero.
      const checks: { date: string; status: string; differences: number; fixes: number }[] = [];
      for (const date of [...dates].sort()) {
        const { check, ran } = unwrap(await stack.call('runBillCheck', { date }, ADMIN));
        checks.push({
          date,
          status: check.status,
          differences: check.discrepancyCount,
          fixes: check.actions.length,
        });
        if (!ran || check.status !== 'DONE') problems.push(`bill check of ${date}: ${check.status}`);
        for (const d of check.discrepancies)
          problems.push(
            `bill check of ${date}: ${d.kind} ${d.orderId ?? ''} ${d.refundId ?? ''} ${d.detail ?? ''}`,
          );
        for (const a of check.actions)
          problems.push(`bill check of ${date} had to book ${a.kind} ${a.orderId} ${a.refundId ?? ''}`);
        if (check.totals.payments !== paidAtWx.filter((o) => billDate(o.paidAtMs!) === date).length)
          problems.push(`bill check of ${date} counted ${check.totals.payments} payments`);
      }

      const notifies = stack.simulator.notifies();
      const paidOrders = dbOrders.filter((o) => o.status === 'PAID');
      summary(`fault-campaign ${provider}`, {
        orders: dbOrders.length,
        'paid at WeChat': paidAtWx.length,
        'refund applications': figures.refundApplications,
        'refunds at WeChat': ledger.refunds.length,
        'refunded fen': paidOrders.reduce((a, o) => a + o.refundedFee, 0),
        'fault batches': figures.faultBatches,
        'functions killed mid-call': figures.kills,
        'notifies dropped': notifies.filter((n) => n.dropped).length,
        'notifies duplicated': notifies.filter((n) => n.duplicate).length,
        'notify attempts': notifies.length,
        'reconcile runs': reconcileRuns,
        'bill rows': billRows,
        'days bill-checked': checks.map((c) => `${c.date} ${c.status}`).join(', '),
        'bill-check differences and fixes': checks.reduce((n, c) => n + c.differences + c.fixes, 0),
        'lost or doubled or misdirected': problems.length,
      });
      expect(problems).toEqual([]);
      expect(paidAtWx.length).toBeGreaterThan(0);
      expect(ledger.refunds.length).toBeGreaterThan(0);
      // Every order went through this provider.
      expect(dbOrders.every((o) => o.provider === provider)).toBe(true);
    }, 600_000);
  });
}
