/**
 * Large days and backlogs for the bill-check and reconcile benchmarks, written straight into
 * the emulator and the simulator's ledger as they would stand after their API calls (making
 * 100,000 trades through the functions would take hours and measure something else).
 */
import type { OrderDoc, RefundDoc } from '../cloudfunctions/shared/domain/model';
import type { Stack } from '../sandbox/stack';
import type { SimOrder, SimRefund } from '../sandbox/wxpay';
import { compactTime } from '../sandbox/wxpay/time';

export const BENCH_ADMIN = 'o_admin_demo';
const PRICES = [1, 990, 1990, 6800, 12800];

export interface Trade {
  order: OrderDoc;
  sim: SimOrder;
}

function ids(prefix: string, i: number): string {
  // Shaped like the shop's own ids (time first), unique by the counter.
  return `${prefix}${String(i).padStart(8, '0')}${(i * 2654435761).toString(36).slice(-6)}`.slice(0, 32);
}

/** One trade as both sides hold it: `paidAtMs` set means paid (SUCCESS at WeChat, PAID here). */
export function trade(
  stack: Stack,
  i: number,
  o: { createdAtMs: number; paidAtMs?: number; prefix: string },
): Trade {
  const m = stack.info.merchant;
  const totalFee = PRICES[i % PRICES.length]!;
  const id = ids(o.prefix, i);
  const paid = o.paidAtMs !== undefined;
  const transactionId = paid
    ? `4200${compactTime(o.paidAtMs!).slice(0, 8)}${String(i).padStart(16, '0')}`
    : undefined;
  const prepayId = `wx${compactTime(o.createdAtMs)}${String(i).padStart(22, '0')}`.slice(0, 36);
  const order: OrderDoc = {
    _id: id,
    openid: `o_bench_${i % 997}`,
    status: paid ? 'PAID' : 'NOTPAY',
    items: [{ productId: 'chopsticks', name: '竹筷五双', priceFen: totalFee, quantity: 1 }],
    totalFee,
    description: '小店-竹筷五双',
    clientIp: '127.0.0.1',
    signType: m.signType,
    createdAtMs: o.createdAtMs,
    updatedAtMs: o.paidAtMs ?? o.createdAtMs,
    expiresAtMs: o.createdAtMs + 30 * 60_000,
    prepayId,
    prepayExpiresAtMs: o.createdAtMs + 2 * 3600_000,
    refundReservedFee: 0,
    refundedFee: 0,
    refundUsedFee: 0,
    refundCount: 0,
    refundOpenCount: 0,
    refundBook: {},
    refundCallUntilMs: 0,
    // Reconcile looks at an unpaid order when this is due (its own schedule, as createOrder sets it).
    ...(paid
      ? { paidAtMs: o.paidAtMs!, transactionId }
      : { nextCheckAtMs: o.createdAtMs + 60_000, checkCount: 0 }),
  };
  const sim: SimOrder = {
    mchId: m.mchid,
    appid: m.appid,
    outTradeNo: id,
    request: {},
    signType: m.signType,
    totalFee,
    openid: order.openid,
    notifyUrl: `${stack.info.gatewayUrl}/http/pay/notify`,
    body: order.description,
    prepayId,
    prepayIssuedAtMs: o.createdAtMs,
    expiresAtMs: order.expiresAtMs,
    tradeState: paid ? 'SUCCESS' : 'NOTPAY',
    createdAtMs: o.createdAtMs,
    ...(paid ? { paidAtMs: o.paidAtMs!, transactionId } : {}),
  };
  return { order, sim };
}

/** A refund of `t` for `fee`, at WeChat `wxStatus`, here `status` (SUCCESS, PROCESSING). */
export function refundOf(
  t: Trade,
  i: number,
  o: { fee: number; atMs: number; status: 'SUCCESS' | 'PROCESSING'; wxStatus: 'SUCCESS' | 'PROCESSING' },
): { refund: RefundDoc; sim: SimRefund } {
  const id = ids('R', i);
  const refund: RefundDoc = {
    _id: id,
    orderId: t.order._id,
    openid: t.order.openid,
    refundFee: o.fee,
    totalFee: t.order.totalFee,
    reason: 'bench',
    status: o.status,
    createdAtMs: o.atMs,
    updatedAtMs: o.atMs,
    submittedAtMs: o.atMs,
    leaseUntilMs: 0,
    submitAttempts: 1,
    history: [],
    ...(o.status === 'SUCCESS'
      ? { finishedAtMs: o.atMs }
      : { nextCheckAtMs: o.atMs + 60_000, checkCount: 0 }),
  };
  const sim: SimRefund = {
    mchId: t.sim.mchId,
    appid: t.sim.appid,
    outRefundNo: id,
    outTradeNo: t.order._id,
    transactionId: t.sim.transactionId!,
    refundId: `50${String(i).padStart(27, '0')}`,
    refundFee: o.fee,
    totalFee: t.order.totalFee,
    status: o.wxStatus,
    createdAtMs: o.atMs,
    // Due already: refundquery settles it on the spot.
    settleAtMs: 0,
    ...(o.wxStatus === 'SUCCESS' ? { settledAtMs: o.atMs } : {}),
  };
  // The order carries the refund as applyRefund and the notify would have left it.
  const settled = o.status === 'SUCCESS';
  t.order.refundCount += 1;
  t.order.refundUsedFee += o.fee;
  if (settled) t.order.refundedFee += o.fee;
  else {
    t.order.refundReservedFee += o.fee;
    t.order.refundOpenCount = (t.order.refundOpenCount ?? 0) + 1;
  }
  t.order.refundBook[id] = { fee: o.fee, state: settled ? 'settled' : 'reserved', atMs: o.atMs };
  t.sim.tradeState = 'REFUND';
  return { refund, sim };
}

/** Writes documents in chunks of 1000 (one request each). */
export async function insertAll(stack: Stack, collection: string, docs: object[]): Promise<void> {
  for (let i = 0; i < docs.length; i += 1000) {
    await stack.db.insertMany(collection, docs.slice(i, i + 1000) as Record<string, unknown>[]);
  }
}
