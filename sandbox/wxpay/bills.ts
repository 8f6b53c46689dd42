/**
 * The simulator's bills (downloadbill) and refunds made "on the merchant platform", which
 * reach the shop only through the bill. What a bill looks like, as WeChat sends it:
 *
 * - three column sets: ALL (payments and refunds), SUCCESS (payments), REFUND (refunds, with
 *   when each was applied for and when it succeeded);
 * - a UTF-8 BOM, CRLF line ends, every value behind a back-tick, amounts in yuan, the fee
 *   with five decimals (rounded per trade to the fen, e.g. 0.18000), the rate as `0.60%`;
 * - the summary header and row at the end;
 * - bills of a day exist from 10:00 the next day, Beijing time ("Bill Creating" before; WeChat
 *   starts generating at 9:00), on the simulator's clock, so tests move that clock forward;
 * - a day without trades answers "No Bill Exist"; tar_type=GZIP gzips the same CSV.
 *
 * A payment is listed on the day it was paid; a refund on the day it was applied for, with
 * the state it had when the bill was generated (09:00 the next day), and the payment's time.
 */
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { fenToYuan } from '../../cloudfunctions/shared/money';
import {
  BILL_COLUMNS,
  BILL_SUMMARY_COLUMNS,
  type BillRow,
  type BillType,
  formatBill,
  formatFeeYuan,
} from '../../cloudfunctions/shared/wxpay/bill';
import type { WxParams } from '../../cloudfunctions/shared/wxpay/types';
import type { Ledger, SimOrder, SimRefund } from './ledger';
import { billDate, compactTime, dashedTime } from './time';
import type { SimMerchant } from './verify';

/** WeChat's answers to downloadbill failures, as return_msg (and error_code where known). */
export const BILL_ERRORS = {
  noBill: { returnMsg: 'No Bill Exist', errorCode: '20002' },
  creating: { returnMsg: 'Bill Creating' },
  billDate: { returnMsg: 'invalid bill_date', errorCode: '20001' },
  billType: { returnMsg: 'invalid bill_type', errorCode: '20001' },
  tarType: { returnMsg: 'invalid tar_type', errorCode: '20001' },
} as const;

export type BillFailure = (typeof BILL_ERRORS)[keyof typeof BILL_ERRORS];

/** The settlement fee rate of an ordinary small merchant (0.60%), in parts per million. */
export const FEE_RATE_PPM = 6000;
const FEE_RATE_TEXT = '0.60%';
/** Bills of a day exist from this hour of the next day (Beijing). */
export const BILL_READY_HOUR = 10;
/** And show each refund as it stood at this hour of the next day. */
const BILL_GENERATED_HOUR = 9;
const CST_OFFSET_MS = 8 * 3600_000;
const HOUR_MS = 3600_000;

export interface BillFile {
  body: Buffer;
  contentType: string;
  rows: number;
}

function dayStart(date: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(date);
  if (!m) return undefined;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) - CST_OFFSET_MS;
  return billDate(ms) === date ? ms : undefined;
}

/** When the bill of `date` becomes available (epoch ms); undefined for a malformed date. */
export function billReadyAtMs(date: string): number | undefined {
  const start = dayStart(date);
  return start === undefined ? undefined : start + (24 + BILL_READY_HOUR) * HOUR_MS;
}

/** The fee WeChat charges on an amount: rate × amount, rounded to the fen. */
export function feeFen(amountFen: number): number {
  const sign = amountFen < 0 ? -1 : 1;
  return sign * Math.round((Math.abs(amountFen) * FEE_RATE_PPM) / 1_000_000);
}

/** The refund's state as the bill shows it: final only if it ended before the bill was made. */
function statusAt(r: SimRefund, generatedAtMs: number): string {
  if (r.status === 'PROCESSING' || r.settledAtMs === undefined || r.settledAtMs > generatedAtMs)
    return 'PROCESSING';
  return r.status;
}

function baseRow(o: SimOrder): BillRow {
  // A service provider's order (and cloudPay's, under Tencent's provider) is kept under the
  // account `<sp mch_id>/<sub_mch_id>`; the bill names the two apart.
  const [mchId, subMchId] = o.mchId.split('/');
  return {
    交易时间: dashedTime(o.paidAtMs!),
    公众账号ID: o.appid,
    商户号: mchId ?? o.mchId,
    特约商户号: subMchId ?? '0',
    设备号: '',
    微信订单号: o.transactionId ?? '',
    商户订单号: o.outTradeNo,
    用户标识: o.openid,
    交易类型: 'JSAPI',
    付款银行: 'OTHERS',
    货币种类: 'CNY',
    代金券金额: '0.00',
    充值券退款金额: '0.00',
    商品名称: o.body,
    商户数据包: o.attach ?? '',
    费率: FEE_RATE_TEXT,
    费率备注: '',
  };
}

// WeChat makes a day's bill once; the simulator makes it on the first download and again only
// when the ledger changed since (tests move the clock back and forth around new trades).
const made = new WeakMap<Ledger, { version: number; files: Map<string, BillFile | BillFailure> }>();

/** The answer to one downloadbill request: the file, or WeChat's failure. */
export function generateBill(
  ledger: Ledger,
  m: SimMerchant,
  p: WxParams,
  nowMs: number,
): BillFile | BillFailure {
  const date = p['bill_date'] ?? '';
  const start = dayStart(date);
  if (start === undefined) return BILL_ERRORS.billDate;
  const type = (p['bill_type'] ?? 'ALL') as BillType;
  if (!(type in BILL_COLUMNS)) return BILL_ERRORS.billType;
  const tar = p['tar_type'];
  if (tar !== undefined && tar !== 'GZIP') return BILL_ERRORS.tarType;
  if (nowMs < start + (24 + BILL_READY_HOUR) * HOUR_MS) return BILL_ERRORS.creating;
  let cache = made.get(ledger);
  if (cache?.version !== ledger.version) {
    cache = { version: ledger.version, files: new Map() };
    made.set(ledger, cache);
  }
  const key = `${m.mchId}/${date}/${type}/${tar ?? ''}`;
  const file = cache.files.get(key) ?? makeBill(ledger, m, start, type, tar === 'GZIP');
  cache.files.set(key, file);
  return file;
}

function makeBill(
  ledger: Ledger,
  m: SimMerchant,
  start: number,
  type: BillType,
  gzip: boolean,
): BillFile | BillFailure {
  const date = billDate(start);
  const generatedAtMs = start + (24 + BILL_GENERATED_HOUR) * HOUR_MS;

  const rows: { at: number; key: string; row: BillRow }[] = [];
  const sums = { settled: 0, refunded: 0, fee: 0, ordered: 0, applied: 0 };
  if (type !== 'REFUND') {
    for (const o of ledger.orders.values()) {
      if (o.mchId !== m.mchId || o.paidAtMs === undefined || billDate(o.paidAtMs) !== date) continue;
      const fee = feeFen(o.totalFee);
      rows.push({
        at: o.paidAtMs,
        key: o.outTradeNo,
        row: {
          ...baseRow(o),
          交易状态: 'SUCCESS',
          应结订单金额: fenToYuan(o.totalFee),
          微信退款单号: '0',
          商户退款单号: '0',
          退款金额: '0.00',
          退款类型: '',
          退款状态: '',
          手续费: formatFeeYuan(fee),
          订单金额: fenToYuan(o.totalFee),
          申请退款金额: '0.00',
        },
      });
      sums.settled += o.totalFee;
      sums.ordered += o.totalFee;
      sums.fee += fee;
    }
  }
  if (type !== 'SUCCESS') {
    for (const r of ledger.refunds.values()) {
      if (r.mchId !== m.mchId || billDate(r.createdAtMs) !== date) continue;
      const o = ledger.order(r.mchId, r.outTradeNo);
      if (!o || o.paidAtMs === undefined) continue;
      const status = statusAt(r, generatedAtMs);
      const fee = -feeFen(r.refundFee);
      rows.push({
        at: r.createdAtMs,
        key: r.outRefundNo,
        row: {
          ...baseRow(o),
          交易状态: 'REFUND',
          应结订单金额: '0.00',
          退款申请时间: dashedTime(r.createdAtMs),
          退款成功时间: status === 'SUCCESS' ? dashedTime(r.settledAtMs!) : '',
          微信退款单号: r.refundId,
          商户退款单号: r.outRefundNo,
          退款金额: fenToYuan(r.refundFee),
          退款类型: 'ORIGINAL',
          退款状态: status,
          手续费: formatFeeYuan(fee),
          订单金额: '0.00',
          申请退款金额: fenToYuan(r.refundFee),
        },
      });
      sums.refunded += r.refundFee;
      sums.applied += r.refundFee;
      sums.fee += fee;
    }
  }
  if (rows.length === 0) return BILL_ERRORS.noBill;
  rows.sort((a, b) => a.at - b.at || (a.key < b.key ? -1 : 1));
  const csv = formatBill({
    columns: [...BILL_COLUMNS[type]],
    rows: rows.map((r) => r.row),
    summaryColumns: [...BILL_SUMMARY_COLUMNS],
    summary: {
      总交易单数: String(rows.length),
      应结订单总金额: fenToYuan(sums.settled),
      退款总金额: fenToYuan(sums.refunded),
      充值券退款总金额: '0.00',
      手续费总金额: formatFeeYuan(sums.fee),
      订单总金额: fenToYuan(sums.ordered),
      申请退款总金额: fenToYuan(sums.applied),
    },
  });
  return gzip
    ? { body: gzipSync(csv), contentType: 'application/x-gzip', rows: rows.length }
    : { body: Buffer.from(csv, 'utf8'), contentType: 'text/plain; charset=utf-8', rows: rows.length };
}

export class MerchantPlatformRefundError extends Error {}

/**
 * A refund the merchant makes by hand on the merchant platform: WeChat numbers it, sends the
 * shop no notify (it never gave a notify_url), and settles it like any other. The shop learns
 * of it only from the bill (or refundquery, if it knew the number).
 */
export function merchantPlatformRefund(
  ledger: Ledger,
  m: SimMerchant,
  p: { outTradeNo: string; refundFee: number },
  nowMs: number,
  settleAtMs: number,
): SimRefund {
  const o = ledger.order(m.mchId, p.outTradeNo);
  if (!o || (o.tradeState !== 'SUCCESS' && o.tradeState !== 'REFUND'))
    throw new MerchantPlatformRefundError(`order ${p.outTradeNo} is not paid`);
  if (!Number.isSafeInteger(p.refundFee) || p.refundFee < 1)
    throw new MerchantPlatformRefundError('refundFee must be a positive number of fen');
  const refunded = ledger
    .refundsOf(m.mchId, o.outTradeNo)
    .filter((r) => r.status !== 'REFUNDCLOSE')
    .reduce((s, r) => s + r.refundFee, 0);
  if (refunded + p.refundFee > o.totalFee)
    throw new MerchantPlatformRefundError(
      `at most ${o.totalFee - refunded} fen of the order can be refunded`,
    );
  return {
    mchId: m.mchId,
    appid: m.appid,
    outRefundNo: `${compactTime(nowMs)}${digits(12)}`,
    outTradeNo: o.outTradeNo,
    transactionId: o.transactionId!,
    refundId: `50${digits(27)}`,
    refundFee: p.refundFee,
    totalFee: o.totalFee,
    refundDesc: '商户平台退款',
    status: 'PROCESSING',
    createdAtMs: nowMs,
    settleAtMs,
  };
}

function digits(n: number): string {
  let s = '';
  for (const b of randomBytes(n)) s += String(b % 10);
  return s;
}
