/**
 * The simulator's own truth: orders, refunds, notify deliveries still owed and the last
 * notify attempts with the shop's replies. Optionally
 * persisted as one JSON file, written to a temp file and renamed so a crash never leaves
 * half a ledger behind (`npm start` survives restarts).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SignType, WxParamsIn } from '../../cloudfunctions/shared/wxpay';
import type { NotifyRecord } from './notifier';
import { dashedTime } from './time';

/** Notify attempts kept across restarts: what the console shows and a little more. */
export const NOTIFY_LOG_KEPT = 200;

export type TradeState = 'NOTPAY' | 'SUCCESS' | 'REFUND' | 'CLOSED' | 'USERPAYING' | 'PAYERROR';
export type RefundStatus = 'PROCESSING' | 'SUCCESS' | 'REFUNDCLOSE' | 'CHANGE';
/**
 * Which API created an order or refund, when not APIv2 over HTTP: it decides the format of
 * its notifies (v3: signed JSON with an encrypted resource; cloudpay: a function invocation)
 * and, for orders, how the paySign is checked.
 */
export type SimApi = 'v3' | 'cloudpay';
/** How a notify travels: APIv2 XML over HTTP when absent. */
export type NotifyTransport = 'v3' | 'function';

export interface SimOrder {
  mchId: string;
  appid: string;
  outTradeNo: string;
  /** The unifiedorder fields that must be identical on re-entry (everything but nonce_str/sign). */
  request: Record<string, string>;
  signType: SignType;
  totalFee: number;
  openid: string;
  notifyUrl: string;
  attach?: string;
  body: string;
  prepayId: string;
  prepayIssuedAtMs: number;
  /** From time_expire, if given. */
  expiresAtMs?: number;
  tradeState: TradeState;
  /** Paid partly with a coupon (代金券), in fen. */
  couponFee?: number;
  createdAtMs: number;
  transactionId?: string;
  paidAtMs?: number;
  closedAtMs?: number;
  api?: SimApi;
}

export interface SimRefund {
  mchId: string;
  appid: string;
  outRefundNo: string;
  outTradeNo: string;
  transactionId: string;
  refundId: string;
  refundFee: number;
  totalFee: number;
  refundDesc?: string;
  notifyUrl?: string;
  status: RefundStatus;
  createdAtMs: number;
  settleAtMs: number;
  settledAtMs?: number;
  api?: SimApi;
}

/** One notify that is still owed: its next attempt is due at `dueAtMs` (wall clock). */
export interface PendingNotify {
  id: string;
  kind: 'pay' | 'refund';
  /** A URL, or a function name for the `function` transport. */
  url: string;
  body: string;
  transport?: NotifyTransport;
  /** The attempt number the next send will be (1-based). */
  attempt: number;
  dueAtMs: number;
  /** Held back by the reorderNotifies fault until flushed. */
  held?: boolean;
}

export interface LedgerData {
  orders: SimOrder[];
  refunds: SimRefund[];
  pendingNotifies: PendingNotify[];
  /** The last NOTIFY_LOG_KEPT attempts, oldest first (absent in ledgers written before it was kept). */
  notifyLog?: NotifyRecord[];
}

export class Ledger {
  readonly orders = new Map<string, SimOrder>();
  readonly refunds = new Map<string, SimRefund>();
  readonly pending = new Map<string, PendingNotify>();
  /** Every notify attempt since start, after the ones kept from before a restart. */
  readonly notifyLog: NotifyRecord[] = [];
  private readonly prepayIndex = new Map<string, string>();
  /** Bumped by every change, so what is derived from the ledger (bills) knows when to redo it. */
  version = 0;

  constructor(private readonly stateFile?: string) {
    if (stateFile && existsSync(stateFile)) {
      const data = JSON.parse(readFileSync(stateFile, 'utf8')) as LedgerData;
      for (const o of data.orders) this.putOrder(o, false);
      for (const r of data.refunds) this.refunds.set(key(r.mchId, r.outRefundNo), r);
      for (const n of data.pendingNotifies) this.pending.set(n.id, n);
      this.notifyLog.push(...(data.notifyLog ?? []));
    }
  }

  order(mchId: string, outTradeNo: string): SimOrder | undefined {
    return this.orders.get(key(mchId, outTradeNo));
  }

  orderByTransactionId(mchId: string, transactionId: string): SimOrder | undefined {
    for (const o of this.orders.values())
      if (o.mchId === mchId && o.transactionId === transactionId) return o;
    return undefined;
  }

  orderByPrepayId(prepayId: string): SimOrder | undefined {
    const k = this.prepayIndex.get(prepayId);
    return k === undefined ? undefined : this.orders.get(k);
  }

  putOrder(o: SimOrder, save = true): void {
    this.version++;
    this.orders.set(key(o.mchId, o.outTradeNo), o);
    this.prepayIndex.set(o.prepayId, key(o.mchId, o.outTradeNo));
    if (save) this.save();
  }

  refund(mchId: string, outRefundNo: string): SimRefund | undefined {
    return this.refunds.get(key(mchId, outRefundNo));
  }

  refundsOf(mchId: string, outTradeNo: string): SimRefund[] {
    return [...this.refunds.values()]
      .filter((r) => r.mchId === mchId && r.outTradeNo === outTradeNo)
      .sort((a, b) => a.createdAtMs - b.createdAtMs);
  }

  putRefund(r: SimRefund, save = true): void {
    this.version++;
    this.refunds.set(key(r.mchId, r.outRefundNo), r);
    if (save) this.save();
  }

  clear(): void {
    this.version++;
    this.orders.clear();
    this.refunds.clear();
    this.pending.clear();
    this.notifyLog.length = 0;
    this.prepayIndex.clear();
    this.save();
  }

  toJSON(): LedgerData {
    return {
      orders: [...this.orders.values()],
      refunds: [...this.refunds.values()],
      pendingNotifies: [...this.pending.values()],
      notifyLog: this.notifyLog.slice(-NOTIFY_LOG_KEPT),
    };
  }

  save(): void {
    if (!this.stateFile) return;
    mkdirSync(dirname(this.stateFile), { recursive: true });
    const tmp = `${this.stateFile}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.toJSON(), null, 1));
    renameSync(tmp, this.stateFile);
  }
}

function key(mchId: string, no: string): string {
  return `${mchId}\u0000${no}`;
}

/** What a refund notify's req_info says of this refund (退款结果通知), before encryption. */
export function refundReqInfo(r: SimRefund): WxParamsIn {
  return {
    out_refund_no: r.outRefundNo,
    out_trade_no: r.outTradeNo,
    refund_account: 'REFUND_SOURCE_RECHARGE_FUNDS',
    refund_fee: r.refundFee,
    refund_id: r.refundId,
    refund_recv_accout: '支付用户零钱',
    refund_request_source: 'API',
    refund_status: r.status,
    settlement_refund_fee: r.refundFee,
    settlement_total_fee: r.totalFee,
    success_time: r.status === 'SUCCESS' ? dashedTime(r.settledAtMs!) : undefined,
    total_fee: r.totalFee,
    transaction_id: r.transactionId,
  };
}
