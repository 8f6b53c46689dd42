/**
 * What a shopper and the merchant are shown of stored documents (model.ts), and the gaps
 * reconcile waits (schedule.ts): which fields each view carries, when an order is still
 * payable, what can still be refunded, and how a gap is picked and scaled.
 */
import { describe, expect, it } from 'vitest';
import {
  isPayable,
  type OrderDoc,
  orderView,
  productView,
  type RefundDoc,
  refundView,
} from '../../../cloudfunctions/shared/domain/model';
import {
  gapMs,
  REFUND_QUERY_GAPS_MS,
  SUBMIT_RETRY_GAPS_MS,
} from '../../../cloudfunctions/shared/domain/schedule';

const MIN = 60_000;
const order = (extra: Partial<OrderDoc> = {}): OrderDoc => ({
  _id: 'o1',
  openid: 'u',
  status: 'PAID',
  items: [{ productId: 'p', name: '茶', priceFen: 1000, quantity: 2 }],
  totalFee: 2000,
  description: '店-茶',
  clientIp: '127.0.0.1',
  signType: 'HMAC-SHA256',
  createdAtMs: 1,
  updatedAtMs: 2,
  expiresAtMs: 100,
  prepayId: null,
  prepayExpiresAtMs: 0,
  refundReservedFee: 300,
  refundedFee: 200,
  refundUsedFee: 500,
  refundCount: 2,
  refundOpenCount: 1,
  refundBook: {},
  refundCallUntilMs: 0,
  ...extra,
});
const refund = (extra: Partial<RefundDoc> = {}): RefundDoc => ({
  _id: 'R1',
  orderId: 'o1',
  openid: 'u',
  refundFee: 300,
  totalFee: 2000,
  reason: '不想要了',
  status: 'FAILED',
  createdAtMs: 1,
  updatedAtMs: 2,
  leaseUntilMs: 0,
  submitAttempts: 1,
  history: [],
  ...extra,
});

describe('an order as the shopper sees it', () => {
  it('what can still be refunded: a paid order’s total less what is used, never below zero', () => {
    expect(orderView(order(), 0).refundableFee).toBe(1500);
    expect(orderView(order({ refundUsedFee: 2500 }), 0).refundableFee).toBe(0);
    expect(orderView(order({ status: 'NOTPAY', refundUsedFee: 0 }), 0).refundableFee).toBe(0);
  });

  it('payable while NOTPAY, not cancelled, and before its expiry (the expiry itself is too late)', () => {
    const open = { status: 'NOTPAY' as const, expiresAtMs: 100, cancelledAtMs: undefined };
    expect(isPayable(open, 99)).toBe(true);
    expect(isPayable(open, 100)).toBe(false);
    expect(isPayable({ ...open, cancelledAtMs: 50 }, 10)).toBe(false);
    expect(isPayable({ ...open, status: 'PAID' }, 10)).toBe(false);
    expect(orderView(order({ status: 'NOTPAY' }), 10).payable).toBe(true);
  });

  it('carries the optional facts only when there are some', () => {
    const bare = orderView(order(), 0);
    // Strictly: a fact the order does not have is no key at all, not a key holding undefined.
    expect(bare).toStrictEqual({
      orderId: 'o1',
      status: 'PAID',
      totalFee: 2000,
      items: order().items,
      description: '店-茶',
      createdAtMs: 1,
      expiresAtMs: 100,
      refundReservedFee: 300,
      refundedFee: 200,
      refundableFee: 1500,
      payable: false,
    });
    const ext = {
      refundId: 'W1',
      refundFee: 1,
      status: 'SUCCESS' as const,
      billDate: '20261129',
      recordedAtMs: 5,
    };
    const full = orderView(
      order({
        paidAtMs: 0,
        transactionId: 't1',
        closedAtMs: 0,
        cancelledAtMs: 0,
        flag: 'PAID_AFTER_CLOSE',
        externalRefunds: [ext],
      }),
      0,
    );
    expect(full).toMatchObject({
      paidAtMs: 0,
      transactionId: 't1',
      closedAtMs: 0,
      cancelledAtMs: 0,
      flag: 'PAID_AFTER_CLOSE',
      externalRefunds: [ext],
    });
    expect(orderView(order({ externalRefunds: [] }), 0)).not.toHaveProperty('externalRefunds');
    expect(orderView(order({ transactionId: '' }), 0)).not.toHaveProperty('transactionId');
  });

  it('a product shows its description only when it has one', () => {
    const p = { _id: 'p', name: '茶', priceFen: 1, image: 'i', onSale: true, sort: 0 };
    expect(productView(p)).toStrictEqual({ id: 'p', name: '茶', priceFen: 1, image: 'i' });
    expect(productView({ ...p, description: '好' })).toEqual({
      id: 'p',
      name: '茶',
      priceFen: 1,
      image: 'i',
      description: '好',
    });
  });
});

describe('a refund as the shopper and the merchant see it', () => {
  it('the shopper never sees WeChat’s reason, the flag, the history or the openid', () => {
    const r = refund({
      failReason: 'NOTENOUGH: 基本账户余额不足',
      flag: 'SUCCESS_AFTER_FINAL',
      flaggedFrom: 'REJECTED',
      history: [{ atMs: 1, status: 'FAILED', source: 'refund' }],
    });
    expect(refundView(r)).toEqual({
      refundId: 'R1',
      orderId: 'o1',
      refundFee: 300,
      totalFee: 2000,
      reason: '不想要了',
      status: 'FAILED',
      createdAtMs: 1,
      updatedAtMs: 2,
    });
    expect(refundView(r, true)).toMatchObject({
      failReason: 'NOTENOUGH: 基本账户余额不足',
      flag: 'SUCCESS_AFTER_FINAL',
      flaggedFrom: 'REJECTED',
      history: r.history,
      openid: 'u',
    });
    expect(refundView(refund({ history: undefined as never }), true).history).toEqual([]);
  });

  it('the merchant sees a reason only while it explains the current state', () => {
    for (const status of ['FAILED', 'CLOSED', 'ABNORMAL'] as const)
      expect(refundView(refund({ status, failReason: 'X: y' }), true).failReason).toBe('X: y');
    for (const status of ['APPROVED', 'PROCESSING', 'SUCCESS', 'REJECTED'] as const)
      expect(refundView(refund({ status, failReason: 'X: y' }), true)).not.toHaveProperty('failReason');
  });

  it('carries the optional facts only when there are some', () => {
    for (const merchant of [false, true]) {
      const keys = Object.keys(refundView(refund(), merchant));
      for (const k of [
        'reasonCode',
        'contact',
        'comment',
        'reviewedAtMs',
        'submittedAtMs',
        'finishedAtMs',
        'successorId',
        'predecessorId',
        'flag',
        'flaggedFrom',
      ]) {
        expect(keys).not.toContain(k);
      }
    }
    const v = refundView(
      refund({
        reasonCode: 'QUALITY',
        contact: '138',
        comment: 'ok',
        reviewedAtMs: 0,
        submittedAtMs: 0,
        finishedAtMs: 0,
        successorId: 'R1_2',
        predecessorId: 'R0',
      }),
    );
    expect(v).toMatchObject({
      reasonCode: 'QUALITY',
      contact: '138',
      comment: 'ok',
      reviewedAtMs: 0,
      submittedAtMs: 0,
      finishedAtMs: 0,
      successorId: 'R1_2',
      predecessorId: 'R0',
    });
  });
});

describe('reconcile’s gaps', () => {
  it('the nth gap, the last one repeating, a negative n as the first, scaled and never below 1 ms', () => {
    expect(gapMs(SUBMIT_RETRY_GAPS_MS, 0, 1)).toBe(MIN);
    expect(gapMs(SUBMIT_RETRY_GAPS_MS, 2, 1)).toBe(5 * MIN);
    expect(gapMs(SUBMIT_RETRY_GAPS_MS, 5, 1)).toBe(60 * MIN);
    expect(gapMs(SUBMIT_RETRY_GAPS_MS, 99, 1)).toBe(60 * MIN);
    expect(gapMs(SUBMIT_RETRY_GAPS_MS, -3, 1)).toBe(MIN);
    expect(gapMs(REFUND_QUERY_GAPS_MS, Number.MAX_SAFE_INTEGER, 1)).toBe(24 * 60 * MIN);
    expect(gapMs(SUBMIT_RETRY_GAPS_MS, 1, 0.001)).toBe(120);
    expect(gapMs(SUBMIT_RETRY_GAPS_MS, 0, 1e-9)).toBe(1);
    expect(gapMs([1000], 0, 0.0004)).toBe(1);
    expect(gapMs([1001], 0, 0.5)).toBe(501);
    // No gaps at all: a minute.
    expect(gapMs([], 0, 1)).toBe(MIN);
  });
});
