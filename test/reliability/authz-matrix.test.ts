/**
 * Every function × every kind of caller, against an explicit table of what is allowed
 * (docs/ARCHITECTURE.md §3: identity from the WX context only; admins from configuration; a user sees
 * and refunds only their own orders; notifies and the timer are not for mini-program users).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptRefundNotifyForTest, parseXml } from '../../cloudfunctions/shared/wxpay';
import type { InvokeContext } from '../../sandbox/runtime';
import type { Stack } from '../../sandbox/stack';
import {
  ADMIN,
  buyAndPay,
  newRequestId,
  OTHER,
  payNotifyFor,
  ROOMY_LIMITS,
  SHOPPER,
  testStack,
  unwrap,
} from '../integration/support';
import { summary, TIMER_EVENT } from './support';

const CALLERS = ['owner', 'other', 'admin', 'none', 'http', 'timer'] as const;
type CallerKind = (typeof CALLERS)[number];

const CONTEXT: Record<CallerKind, InvokeContext> = {
  owner: { OPENID: SHOPPER, APPID: 'wxlocalsandbox0001', SOURCE: 'wx_client' },
  other: { OPENID: OTHER, APPID: 'wxlocalsandbox0001', SOURCE: 'wx_client' },
  admin: { OPENID: ADMIN, APPID: 'wxlocalsandbox0001', SOURCE: 'wx_client' },
  none: { SOURCE: 'wx_client' },
  http: { SOURCE: 'tcb_http' },
  timer: { SOURCE: 'wx_trigger' },
};

// ✓ = the call does its job; ✗ = refused (and nothing is written). Order of columns: CALLERS.
const EXPECTED: Record<string, string> = {
  listProducts: '✓ ✓ ✓ ✓ ✗ ✗', // public catalogue; HTTP and timer events are not client events
  whoami: '✓ ✓ ✓ ✗ ✗ ✗',
  createOrder: '✓ ✗ ✗ ✗ ✗ ✗', // pay again for the owner's order
  queryOrder: '✓ ✗ ✗ ✗ ✗ ✗',
  listOrders: '✓ ✓ ✓ ✗ ✗ ✗', // each caller gets their own orders only (checked below)
  applyRefund: '✓ ✗ ✗ ✗ ✗ ✗',
  approveRefund: '✗ ✗ ✓ ✗ ✗ ✗',
  listRefunds: '✗ ✗ ✓ ✗ ✗ ✗',
  getRefund: '✓ ✗ ✓ ✗ ✗ ✗', // the applicant's view, or the merchant's
  withdrawRefund: '✓ ✗ ✗ ✗ ✗ ✗', // the applicant only, not even the merchant
  cancelOrder: '✓ ✗ ✗ ✗ ✗ ✗',
  refundReasons: '✓ ✓ ✓ ✗ ✗ ✗',
  payNotify: '✗ ✗ ✗ ✓ ✓ ✗', // without OPENID the signature is the authority
  refundNotify: '✗ ✗ ✗ ✓ ✓ ✗', // without OPENID the req_info decryption is
  reconcile: '✗ ✗ ✗ ✗ ✗ ✓', // the timer only
  listBillChecks: '✗ ✗ ✓ ✗ ✗ ✗',
  runBillCheck: '✗ ✗ ✓ ✗ ✗ ✗',
  billCheck: '✗ ✗ ✗ ✗ ✗ ✓', // the timer only
  noticeTemplates: '✓ ✓ ✓ ✗ ✗ ✗', // any user; the merchant's templates to admins only (checked below)
};

let stack: Stack;
beforeAll(async () => {
  // Every approveRefund cell applies afresh on one order: more open applications than the default 5.
  // One shopper fills every cell within a minute: the per-caller limits are not what this tests.
  stack = await testStack({ env: { REFUND_MAX_OPEN_PER_ORDER: '20', ...ROOMY_LIMITS } });
});
afterAll(() => stack?.close());

function httpEvent(body: string) {
  return {
    httpMethod: 'POST',
    path: '/x',
    headers: { 'content-type': 'text/xml' },
    body,
    isBase64Encoded: false,
  };
}

describe('authorization matrix', () => {
  it('only the cells the design allows succeed, for 19 functions × 6 callers', async () => {
    const paidOrder = await buyAndPay(stack, SHOPPER, 'tea-longjing');
    stack.simulator.setFaults({ dropPayNotifies: true });
    const unpaid = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER),
    );
    // A finished refund, whose genuine notify replay is a harmless SUCCESS.
    const done = unwrap(
      await stack.call(
        'applyRefund',
        { orderId: paidOrder, refundFee: 100, reason: 'm', requestId: newRequestId() },
        SHOPPER,
      ),
    );
    unwrap(await stack.call('approveRefund', { refundId: done.refund.refundId, decision: 'approve' }, ADMIN));
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    const m = stack.info.merchant;
    const payReplay = payNotifyFor(stack, { out_trade_no: paidOrder, total_fee: 6800 });
    const refundReplay = encryptRefundNotifyForTest(
      { appid: m.appid, mchId: m.mchid, apiKey: m.apiKey },
      {
        out_refund_no: done.refund.refundId,
        out_trade_no: paidOrder,
        refund_fee: 100,
        total_fee: 6800,
        refund_status: 'SUCCESS',
      },
    );

    const callableEvents: Record<string, () => Promise<Record<string, unknown>>> = {
      listProducts: async () => ({}),
      whoami: async () => ({}),
      createOrder: async () => ({ orderId: unpaid.orderId }),
      queryOrder: async () => ({ orderId: paidOrder }),
      listOrders: async () => ({}),
      applyRefund: async () => ({
        orderId: paidOrder,
        refundFee: 1,
        reason: 'matrix',
        requestId: newRequestId(),
      }),
      approveRefund: async () => {
        // A fresh application for each cell, so an allowed cell cannot hide a refused one.
        const r = unwrap(
          await stack.call(
            'applyRefund',
            { orderId: paidOrder, refundFee: 1, reason: 'cell', requestId: newRequestId() },
            SHOPPER,
          ),
        );
        return { refundId: r.refund.refundId, decision: 'reject' };
      },
      listRefunds: async () => ({}),
      getRefund: async () => ({ refundId: done.refund.refundId }),
      withdrawRefund: async () => {
        // A fresh application for each cell: one withdrawal cannot stand for another's refusal.
        const r = unwrap(
          await stack.call(
            'applyRefund',
            { orderId: paidOrder, refundFee: 1, reason: 'cell', requestId: newRequestId() },
            SHOPPER,
          ),
        );
        return { refundId: r.refund.refundId };
      },
      cancelOrder: async () => ({
        orderId: unwrap(
          await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER),
        ).orderId,
      }),
      refundReasons: async () => ({}),
      listBillChecks: async () => ({}),
      noticeTemplates: async () => ({}),
      // Yesterday: a day that exists for every clock; its answer (a check) is what counts.
      runBillCheck: async () => ({
        date: new Date(Date.now() + 8 * 3600_000 - 86_400_000).toISOString().slice(0, 10).replace(/-/g, ''),
      }),
    };

    const observed: Record<string, string[]> = {};
    const leaks: string[] = [];
    for (const [fn, makeEvent] of Object.entries(callableEvents)) {
      observed[fn] = [];
      for (const who of CALLERS) {
        const event = await makeEvent();
        const shaped =
          who === 'http' ? httpEvent(JSON.stringify(event)) : who === 'timer' ? TIMER_EVENT() : event;
        const out = await stack.runtime.invoke(fn, shaped, CONTEXT[who]);
        const result = out.result as {
          ok?: boolean;
          data?: { items?: { openid?: string; orderId?: string }[]; admin?: unknown[] };
        };
        observed[fn]!.push(result?.ok === true ? '✓' : '✗');
        if (fn === 'listOrders' && result?.ok) {
          const mine = (await stack.db.all<{ _id: string }>('orders', { openid: CONTEXT[who].OPENID })).map(
            (o) => o._id,
          );
          for (const item of result.data?.items ?? [])
            if (!mine.includes(item.orderId ?? '')) leaks.push(`${who} saw ${item.orderId}`);
        }
        if (
          fn === 'noticeTemplates' &&
          result?.ok &&
          (result.data?.admin?.length ?? 0) > 0 !== (who === 'admin')
        )
          leaks.push(`${who} was offered the merchant's templates: ${result.data?.admin?.length ?? 0}`);
      }
    }
    for (const [fn, body] of [
      ['payNotify', payReplay],
      ['refundNotify', refundReplay],
    ] as const) {
      observed[fn] = [];
      for (const who of CALLERS) {
        const event = who === 'timer' ? TIMER_EVENT() : httpEvent(body);
        const out = await stack.runtime.invoke(fn, event, CONTEXT[who]);
        const text = (out.result as { body?: string } | null)?.body ?? '';
        let ok = false;
        try {
          ok = parseXml(text)['return_code'] === 'SUCCESS';
        } catch {
          ok = false;
        }
        observed[fn]!.push(ok ? '✓' : '✗');
      }
    }
    observed['reconcile'] = [];
    for (const who of CALLERS) {
      const event = who === 'http' ? httpEvent('') : TIMER_EVENT();
      const out = await stack.runtime.invoke('reconcile', event, CONTEXT[who]);
      observed['reconcile'].push(
        typeof (out.result as { ordersChecked?: unknown })?.ordersChecked === 'number' ? '✓' : '✗',
      );
    }

    observed['billCheck'] = [];
    for (const who of CALLERS) {
      const event = who === 'http' ? httpEvent('') : TIMER_EVENT();
      const out = await stack.runtime.invoke('billCheck', event, CONTEXT[who]);
      observed['billCheck'].push(Array.isArray((out.result as { checked?: unknown })?.checked) ? '✓' : '✗');
    }

    const table = Object.entries(observed).map(([fn, cells]) => `  ${fn.padEnd(14)} ${cells.join(' ')}`);
    console.log(`observed (${CALLERS.join(' ')}):\n${table.join('\n')}`);
    const actual = Object.fromEntries(Object.entries(observed).map(([fn, cells]) => [fn, cells.join(' ')]));
    const cells = Object.values(observed).flat();
    const mismatches = Object.keys(EXPECTED).flatMap((fn) =>
      EXPECTED[fn]!.split(' ')
        .map((e, i) => (e === observed[fn]?.[i] ? null : `${fn}×${CALLERS[i]}`))
        .filter(Boolean),
    );
    summary('authz-matrix', {
      cells: cells.length,
      allowed: cells.filter((c) => c === '✓').length,
      refused: cells.filter((c) => c === '✗').length,
      'cells off the table': mismatches.length,
      'foreign orders listed': leaks.length,
    });
    expect(actual).toEqual(EXPECTED);
    expect(leaks).toEqual([]);
  }, 120_000);
});
