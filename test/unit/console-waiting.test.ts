import { describe, expect, it } from 'vitest';
import { waitingAfterReconcile } from '../../sandbox/console/api';

const NOW = 1_000_000;
const settings = { notifyGraceMs: 5000, refundQueryDelayMs: 10_000 };

describe("the console's list of what reconcile left for later", () => {
  it('names an unpaid order within its grace and when reconcile will look at it', () => {
    const waiting = waitingAfterReconcile(
      [
        { _id: 'young', status: 'NOTPAY', createdAtMs: NOW - 1000 },
        { _id: 'old', status: 'NOTPAY', createdAtMs: NOW - 6000 },
      ],
      [],
      NOW,
      settings,
    );
    expect(waiting).toEqual([
      { kind: 'order', id: 'young', status: 'NOTPAY', why: 'pay-notify-grace', dueAtMs: NOW + 4000 },
    ]);
  });

  it('names accepted refunds before their refundquery delay and approved ones whose lease is held', () => {
    const waiting = waitingAfterReconcile(
      [],
      [
        { _id: 'p', status: 'PROCESSING', updatedAtMs: NOW - 2000 },
        { _id: 'a', status: 'APPROVED', leaseUntilMs: NOW + 30_000 },
        { _id: 'free', status: 'APPROVED', leaseUntilMs: NOW - 1 },
      ],
      NOW,
      settings,
    );
    expect(waiting.map((w) => [w.id, w.why, w.dueAtMs])).toEqual([
      ['p', 'refund-query-delay', NOW + 8000],
      ['a', 'submit-lease', NOW + 30_000],
    ]);
  });

  it('takes a later nextCheckAtMs (reconcile backing off) over the rule, soonest first', () => {
    const waiting = waitingAfterReconcile(
      [{ _id: 'o', status: 'NOTPAY', createdAtMs: NOW - 60_000, nextCheckAtMs: NOW + 120_000 }],
      [{ _id: 'r', status: 'PROCESSING', updatedAtMs: NOW, nextCheckAtMs: NOW + 1 }],
      NOW,
      settings,
    );
    expect(waiting.map((w) => [w.id, w.why, w.dueAtMs])).toEqual([
      ['r', 'refund-query-delay', NOW + 10_000],
      ['o', 'backoff', NOW + 120_000],
    ]);
  });
});
