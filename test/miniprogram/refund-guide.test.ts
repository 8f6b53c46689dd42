import { describe, expect, it } from 'vitest';
import type { RefundStatus } from '../../cloudfunctions/shared/contract';
import { REFUND_STATUS_LABEL } from '../../miniprogram/utils/labels';
import {
  decisionResult,
  MANUAL_REFUND_SCREEN,
  merchantGuide,
  SHOPPER_NOTES,
  shopperNote,
} from '../../miniprogram/utils/refund-guide';
import { aRefund } from './harness';

const ALL = Object.keys(REFUND_STATUS_LABEL) as RefundStatus[];

describe('merchantGuide', () => {
  it('offers each state exactly the decisions the backend takes for it', () => {
    const offered = Object.fromEntries(
      ALL.map((status) => [status, merchantGuide({ status }).actions.map((a) => a.decision)]),
    );
    expect(offered).toEqual({
      PENDING_REVIEW: ['approve', 'reject'],
      WITHDRAWN: [],
      REJECTED: [],
      APPROVED: [],
      PROCESSING: [],
      SUCCESS: [],
      FAILED: ['approve', 'reject'],
      CLOSED: ['approve'],
      ABNORMAL: ['resolve'],
    });
  });

  it('asks for a comment only on a rejection, which the shopper reads', () => {
    for (const status of ALL)
      for (const a of merchantGuide({ status }).actions) expect(a.needsComment).toBe(a.decision === 'reject');
  });

  it('sends the merchant to the manual refund screen for ABNORMAL', () => {
    expect(merchantGuide({ status: 'ABNORMAL' }).note?.zh).toContain(MANUAL_REFUND_SCREEN);
  });

  it('offers no second retry of a CLOSED refund that already has a successor', () => {
    expect(merchantGuide({ status: 'CLOSED', successorId: 'R2' }).actions).toEqual([]);
  });
});

describe('SHOPPER_NOTES', () => {
  it('gives every state that did not go through a line that names no WeChat error', () => {
    for (const status of ['FAILED', 'CLOSED', 'ABNORMAL'] as const) {
      const note = SHOPPER_NOTES[status];
      expect(note?.zh).toMatch(/商家正在处理/);
      expect(note?.zh).not.toMatch(/[A-Z_]{4,}|余额/);
    }
  });
});

describe('shopperNote', () => {
  it('tells the shopper a closed refund was made again once the merchant retried it', () => {
    expect(shopperNote({ status: 'CLOSED' })?.zh).toBe('退款未完成，商家正在处理');
    expect(shopperNote({ status: 'CLOSED', successorId: 'R2' })?.zh).toBe(
      '商家已重新发起退款，见新的退款记录',
    );
    expect(shopperNote({ status: 'SUCCESS' })).toBeNull();
  });
});

describe('decisionResult', () => {
  it('names the new refund when a retry answered with a successor', () => {
    const before = aRefund({ refundId: 'R1', status: 'CLOSED' });
    const after = aRefund({ refundId: 'R2', status: 'PROCESSING', predecessorId: 'R1' });
    expect(decisionResult('approve', before, after).zh).toBe(
      '已作为新退款单 R2 重新发起，微信支付已受理，退款中',
    );
  });
});
