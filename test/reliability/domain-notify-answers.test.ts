/**
 * What WeChat reads back from a notify it sent, and what the operator reads in the logs, in
 * one process (world.ts): each refusal answers FAIL with its own message (an unknown order,
 * a message that is not this order's, an amount that is not the order's, a refund that does
 * not match), each is logged with the reason and the order or refund it named, a notify in a
 * dialect this function was not configured for is refused before anything is read, and an
 * APIv3 event of a type the shop does not use is acknowledged and changes nothing. Runs under
 * `npm test` and `npm run test:mutation`.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import {
  handleNotification,
  handlePayNotify,
  handleRefundNotify,
  httpNotification,
  notifyDialect,
} from '../../cloudfunctions/shared/domain/notify';
import { approveRefund } from '../../cloudfunctions/shared/domain/refunds';
import { notifyBodyForTest } from '../../cloudfunctions/shared/providers/v3/testing';
import { encryptRefundNotifyForTest, signPayNotifyForTest } from '../../cloudfunctions/shared/wxpay/testing';
import {
  ADMIN,
  applied,
  deliver,
  logged,
  orderAndPay,
  orderDoc,
  paidOrder,
  refundDoc,
  SHOPPER,
} from './shop';
import { MERCHANT, startWorld, useWorld, type World } from './world';

const keys = { appid: MERCHANT.appid, mchId: MERCHANT.mchId, apiKey: MERCHANT.apiKey };
const payBody = (orderId: string, fee: number, extra = {}) =>
  signPayNotifyForTest(
    { ...keys, signType: 'HMAC-SHA256' },
    { out_trade_no: orderId, total_fee: fee, openid: SHOPPER.openid, ...extra },
  );
const refundBody = (refundId: string, orderId: string, fee: number, total = 5000) =>
  encryptRefundNotifyForTest(keys, {
    out_refund_no: refundId,
    out_trade_no: orderId,
    refund_fee: fee,
    total_fee: total,
    refund_status: 'SUCCESS',
  });
/** APIv2's answer to WeChat: return_code and return_msg. */
const v2Answer = (reply: { reply: { transport: string; body?: string } }) => {
  const body = reply.reply.body ?? '';
  return {
    code: /<return_code><!\[CDATA\[(\w+)\]\]>/.exec(body)?.[1],
    msg: /<return_msg><!\[CDATA\[([^\]]*)\]\]>/.exec(body)?.[1],
  };
};

describe('APIv2 notifies refused, as WeChat and the operator see them', () => {
  const w = useWorld();
  beforeEach(() => w.reset());
  const pay = (body: string, deps: Deps = w.deps()) =>
    handlePayNotify(deps, w.delivery({ kind: 'pay', body }));
  const refundNotify = (body: string) => handleRefundNotify(w.deps(), w.delivery({ kind: 'refund', body }));

  it('an unknown order: FAIL “order not found”, logged as an error with the order number', async () => {
    const answer = await pay(payBody('20261130100000nothing000', 1200));
    expect(answer).toMatchObject({ ok: false, outcome: 'UNKNOWN_ORDER' });
    expect(v2Answer(answer)).toEqual({ code: 'FAIL', msg: 'order not found' });
    expect(logged(w, 'pay_notify.rejected')).toEqual([
      {
        level: 'error',
        event: 'pay_notify.rejected',
        fields: { reason: 'UNKNOWN_ORDER', orderId: '20261130100000nothing000' },
      },
    ]);
  });

  it('another sign type or another provider: FAIL “invalid sign”, logged with the reason and provider', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    await w.deps().store.cas('orders', { _id: orderId }, { signType: 'MD5' });
    const answer = await pay(payBody(orderId, 5000));
    expect(answer).toMatchObject({ ok: false, outcome: 'SIGN_TYPE_MISMATCH' });
    expect(v2Answer(answer)).toEqual({ code: 'FAIL', msg: 'invalid sign' });
    expect(logged(w, 'pay_notify.rejected')).toEqual([
      {
        level: 'warn',
        event: 'pay_notify.rejected',
        fields: { reason: 'SIGN_TYPE_MISMATCH', orderId, provider: 'v2' },
      },
    ]);
  });

  it('an order of another sub-merchant is not this message’s: refused, nothing booked', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    await w.deps().store.cas('orders', { _id: orderId }, { subMchId: '1900000119' });
    const answer = await pay(payBody(orderId, 5000));
    expect(answer).toMatchObject({ ok: false, outcome: 'SUB_MERCHANT_MISMATCH' });
    expect(v2Answer(answer)).toEqual({ code: 'FAIL', msg: 'invalid sign' });
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
    // The same sub-merchant on both sides is this order's.
    const sub = await pay(payBody(orderId, 5000, { sub_mch_id: '1900000119' }));
    expect(sub.outcome).not.toBe('SUB_MERCHANT_MISMATCH');
  });

  it('an amount that is not the order’s: FAIL “total_fee mismatch”', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    const answer = await pay(payBody(orderId, 4999));
    expect(answer).toMatchObject({ ok: false, outcome: 'AMOUNT_MISMATCH' });
    expect(v2Answer(answer)).toEqual({ code: 'FAIL', msg: 'total_fee mismatch' });
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
  });

  it('a payment booked answers SUCCESS', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    const answer = await pay(payBody(orderId, 5000));
    expect(answer).toMatchObject({ ok: true, outcome: 'PAID' });
    expect(v2Answer(answer).code).toBe('SUCCESS');
  });

  it('refund notifies: “refund not found”, “not this refund”, “refund does not match”, each logged', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    const unknown = await refundNotify(refundBody('Rnothing', orderId, 1000));
    expect(unknown).toMatchObject({ ok: false, outcome: 'UNKNOWN_REFUND' });
    expect(v2Answer(unknown)).toEqual({ code: 'FAIL', msg: 'refund not found' });
    const mismatch = await refundNotify(refundBody(r.refundId, orderId, 999));
    expect(mismatch).toMatchObject({ ok: false, outcome: 'MISMATCH' });
    expect(v2Answer(mismatch)).toEqual({ code: 'FAIL', msg: 'refund does not match' });
    await w.deps().store.cas('refunds', { _id: r.refundId }, { provider: 'v3' });
    const other = await refundNotify(refundBody(r.refundId, orderId, 1000));
    expect(other).toMatchObject({ ok: false, outcome: 'PROVIDER_MISMATCH' });
    expect(v2Answer(other)).toEqual({ code: 'FAIL', msg: 'not this refund' });
    expect(logged(w, 'refund_notify.rejected')).toEqual([
      {
        level: 'error',
        event: 'refund_notify.rejected',
        fields: { reason: 'UNKNOWN_REFUND', refundId: 'Rnothing' },
      },
      {
        level: 'warn',
        event: 'refund_notify.rejected',
        fields: { reason: 'PROVIDER_MISMATCH', refundId: r.refundId, provider: 'v2' },
      },
    ]);
    expect(logged(w, 'refund.mismatch')).toEqual([
      {
        level: 'error',
        event: 'refund.mismatch',
        fields: {
          refundId: r.refundId,
          source: 'refundnotify',
          got: expect.objectContaining({ refund_fee: '999' }),
        },
      },
    ]);
    expect((await refundDoc(w, r.refundId)).status).toBe('PENDING_REVIEW');
    expect((await orderDoc(w, orderId)).refundedFee).toBe(0);
  });

  it('a forged notify is logged with the provider’s reason and costs no database request', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    const forged = payBody(orderId, 5000).replace(
      /<sign><!\[CDATA\[[0-9A-F]{64}/,
      `<sign><![CDATA[${'0'.repeat(64)}`,
    );
    const deps = w.deps();
    const answer = await handleNotification(deps, w.delivery({ kind: 'pay', body: forged }), 'refund_notify');
    expect(answer.ok).toBe(false);
    expect(deps.store.requests).toBe(0);
    const [line] = logged(w, 'refund_notify.rejected');
    expect(line).toMatchObject({ level: 'warn', fields: { reason: answer.outcome, provider: 'v2' } });
    expect(line!.fields['detail']).toEqual(expect.any(String));
    // The default kind is a pay notify.
    await handleNotification(w.deps(), w.delivery({ kind: 'pay', body: forged }));
    expect(logged(w, 'pay_notify.rejected')).toHaveLength(1);
  });

  it('a notify in APIv3’s dialect, where only APIv2 is configured: refused unread, with a 400 and the reason', async () => {
    const input = httpNotification('{}', { 'Wechatpay-Signature': 'x', 'Wechatpay-Serial': 'y' });
    const deps = w.deps();
    const answer = await handlePayNotify(deps, input);
    expect(answer).toMatchObject({ ok: false, outcome: 'PROVIDER_NOT_CONFIGURED' });
    expect(answer.reply).toMatchObject({ transport: 'http', statusCode: 400 });
    expect(JSON.parse((answer.reply as { body: string }).body)).toEqual({
      code: 'FAIL',
      message: 'v3 is not configured',
    });
    expect(deps.store.requests).toBe(0);
    expect(logged(w, 'pay_notify.rejected')).toEqual([
      {
        level: 'warn',
        event: 'pay_notify.rejected',
        fields: { reason: 'PROVIDER_NOT_CONFIGURED', provider: 'v3' },
      },
    ]);
    // cloudPay's callbacks come as function events, in cloudPay's own reply.
    const cloud = await handlePayNotify(deps, { transport: 'function', event: {} } as never);
    expect(cloud).toMatchObject({ ok: false, outcome: 'PROVIDER_NOT_CONFIGURED' });
    expect(cloud.reply).toEqual({
      transport: 'function',
      value: { errcode: -1, errmsg: 'cloudpay is not configured' },
    });
  });

  it('reads the dialect from the transport and either APIv3 header', () => {
    expect(notifyDialect(httpNotification('<xml/>'))).toBe('v2');
    expect(notifyDialect(httpNotification('{}', { 'Wechatpay-Signature': 'x' }))).toBe('v3');
    expect(notifyDialect(httpNotification('{}', { 'Wechatpay-Serial': 'y' }))).toBe('v3');
    expect(notifyDialect({ transport: 'function', event: {} } as never)).toBe('cloudpay');
  });
});

describe('APIv3 notifies', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld({ provider: 'v3' });
  }, 120_000);
  afterAll(() => w?.close());
  beforeEach(() => w.reset());

  it('an event type the shop does not use is acknowledged (204) and changes nothing', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    const body = notifyBodyForTest(
      'TRANSACTION.SOMETHING_NEW',
      { out_trade_no: orderId },
      w.config.providers.v3!.apiV3Key,
    );
    const answer = await handlePayNotify(w.deps(), w.delivery({ kind: 'pay', body, v3: true }));
    expect(answer).toMatchObject({ ok: true, outcome: 'IGNORED' });
    expect(answer.reply).toMatchObject({ statusCode: 204 });
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
  });

  it('a verified APIv3 payment for its own order is booked', async () => {
    await orderAndPay(w);
    expect(await deliver(w)).toEqual(['PAID']);
  });

  it('a verified APIv3 payment for an APIv2 order: FAIL “not this order”', async () => {
    const { orderId } = await orderAndPay(w);
    const [sent] = w.outbox.splice(0);
    await w.deps().store.cas('orders', { _id: orderId }, { provider: 'v2' });
    const answer = await handlePayNotify(w.deps(), w.delivery(sent!));
    expect(answer).toMatchObject({ ok: false, outcome: 'PROVIDER_MISMATCH' });
    expect(answer.reply).toMatchObject({ statusCode: 400 });
    expect(JSON.parse((answer.reply as { body: string }).body).message).toBe('not this order');
    expect(logged(w, 'pay_notify.rejected')).toEqual([
      {
        level: 'warn',
        event: 'pay_notify.rejected',
        fields: { reason: 'PROVIDER_MISMATCH', orderId, provider: 'v3' },
      },
    ]);
  });
});

describe('notifies in odd circumstances', () => {
  const w = useWorld();
  beforeEach(() => w.reset());

  it('a function wired without WeChat Pay refuses every notify as not configured', async () => {
    const { orderId } = await orderAndPay(w);
    const [sent] = w.outbox.splice(0);
    const answer = await handlePayNotify({ ...w.deps(), wxpay: undefined }, w.delivery(sent!));
    expect(answer).toMatchObject({ ok: false, outcome: 'PROVIDER_NOT_CONFIGURED' });
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
  });

  it('orders and refunds stored before providers existed are APIv2’s, and hear from it', async () => {
    const { orderId } = await orderAndPay(w);
    const store = w.deps().store;
    await store.cas('orders', { _id: orderId }, { provider: store.cmd.remove() });
    expect((await orderDoc(w, orderId)).provider).toBeUndefined();
    expect(await deliver(w)).toEqual(['PAID']);
    const r = await applied(w, orderId, 1000);
    await store.cas('refunds', { _id: r.refundId }, { provider: store.cmd.remove() });
    await approveRefund(w.deps(), { refundId: r.refundId, decision: 'approve' }, ADMIN);
    w.core.engine.settleOne(r.refundId, 'SUCCESS');
    expect(await deliver(w)).toEqual(['SUCCESS']);
  });

  it('a forged refund notify is logged as refund_notify’s', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    const forged = refundBody(r.refundId, orderId, 1000).replace(
      /<req_info><!\[CDATA\[[^\]]{8}/,
      '<req_info><![CDATA[AAAAAAAA',
    );
    expect((await handleRefundNotify(w.deps(), w.delivery({ kind: 'refund', body: forged }))).ok).toBe(false);
    expect(logged(w, 'refund_notify.rejected')).toHaveLength(1);
    expect(logged(w, 'pay_notify.rejected')).toEqual([]);
  });

  it('an HTTP notify’s body is the bytes as received', () => {
    const bytes = new Uint8Array([60, 120, 62]);
    const bodyOf = (n: ReturnType<typeof httpNotification>) => (n as { body: Uint8Array }).body;
    expect(bodyOf(httpNotification(bytes))).toBe(bytes);
    const fromText = bodyOf(httpNotification('<xml>退款</xml>'));
    expect(Buffer.isBuffer(fromText)).toBe(true);
    expect(Buffer.from(fromText).toString('utf8')).toBe('<xml>退款</xml>');
    expect(httpNotification('x')).toMatchObject({ transport: 'http', method: 'POST', headers: {} });
  });
});
