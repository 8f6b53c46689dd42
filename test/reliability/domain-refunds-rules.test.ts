/**
 * The finer rules of applying for a refund, in one process (world.ts), at their exact edges.
 * Runs under `npm test` and `npm run test:mutation`.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { applied, orderDoc, paidOrder, refused } from './shop';
import { startWorld, type World } from './world';

let w: World;
beforeAll(async () => {
  w = await startWorld();
}, 60_000);
afterAll(() => w?.close());
beforeEach(() => w.reset());

const YEAR_MS = 365 * 24 * 3600_000;

describe('applying for a refund', () => {
  it('is open until exactly a year after WeChat’s time of payment, and closed a millisecond later', async () => {
    const early = await paidOrder(w, 5000);
    const late = await paidOrder(w, 5000);
    const paidAtMs = (await orderDoc(w, early)).paidAtMs!;
    expect((await orderDoc(w, late)).paidAtMs).toBe(paidAtMs);
    w.advance(paidAtMs + YEAR_MS - w.now());
    expect((await applied(w, early, 100)).status).toBe('PENDING_REVIEW');
    w.advance(1);
    await refused(
      applied(w, late, 100),
      'REFUND_NOT_ALLOWED',
      'orders paid more than a year ago cannot be refunded through WeChat Pay',
    );
  });
});
