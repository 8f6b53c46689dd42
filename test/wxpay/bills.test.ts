/**
 * The simulator's bills, byte for byte as WeChat's (column sets, BOM, back-ticks, yuan, the
 * five-decimal fee, the summary, GZIP, availability from 10:00 the next day), and the
 * streaming downloader the bill check uses, against the simulator and against a server that
 * misbehaves on purpose.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { paySign, toXml, withSign } from '../../cloudfunctions/shared/wxpay';
import {
  BILL_ALL_COLUMNS,
  BILL_REFUND_COLUMNS,
  BILL_SUCCESS_COLUMNS,
  BILL_SUMMARY_COLUMNS,
  billFeeMilliFen,
  billFen,
  billRatePpm,
  parseBill,
} from '../../cloudfunctions/shared/wxpay/bill';
import { type BillAnswer, createBillDownloader } from '../../cloudfunctions/shared/wxpay/billdownload';
import { type Env, MD5_MERCHANT, startEnv, uniqueNo } from './fixtures';

const HOUR = 3600_000;
// 2026-03-10 12:00 Beijing.
const DAY = '20260310';
const NOON = Date.UTC(2026, 2, 10, 4, 0, 0);
const NEXT_DAY_10 = Date.UTC(2026, 2, 11, 2, 0, 0);
let clock = NOON;
let env: Env;

beforeAll(async () => {
  env = await startEnv({ now: () => clock, faults: { refundDelayMs: 0 } });
});
afterAll(() => env?.close());

async function paidOrder(totalFee: number): Promise<string> {
  const m = MD5_MERCHANT;
  const outTradeNo = uniqueNo('B');
  const res = await env.client(m).unifiedOrder({
    body: '账单测试',
    out_trade_no: outTradeNo,
    total_fee: totalFee,
    spbill_create_ip: '127.0.0.1',
    notify_url: 'http://127.0.0.1:1/notify',
    openid: 'o_bill',
  });
  const payment = paySign(
    {
      appId: m.appid,
      timeStamp: '1700000000',
      nonceStr: 'n',
      package: `prepay_id=${res['prepay_id']}`,
      signType: m.signType,
    },
    m.apiKey,
  );
  expect(env.sim.pay({ ...payment }).errMsg).toBe('requestPayment:ok');
  return outTradeNo;
}

/** The raw downloadbill answer. */
function rawBill(params: Record<string, string>): Promise<{ status: number; type: string; body: Buffer }> {
  const m = MD5_MERCHANT;
  const body = toXml(
    withSign({ appid: m.appid, mch_id: m.mchId, nonce_str: 'x', ...params }, m.apiKey, 'MD5'),
  );
  return new Promise((resolve, reject) => {
    const req = https.request(`${env.sim.url}/pay/downloadbill`, {
      method: 'POST',
      ca: env.config(m).caPem,
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: String(res.headers['content-type']),
          body: Buffer.concat(chunks),
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function collect(a: BillAnswer): Promise<string[]> {
  if (a.kind !== 'bill') throw new Error(`no bill: ${a.kind}`);
  const out: string[] = [];
  for await (const line of a.lines) out.push(line);
  return out;
}

let paidNo: string;
let refundNo: string;

describe('simulator bills', () => {
  beforeAll(async () => {
    clock = NOON;
    paidNo = await paidOrder(2990);
    refundNo = uniqueNo('R');
    await env.client(MD5_MERCHANT).refund({
      out_trade_no: paidNo,
      out_refund_no: refundNo,
      total_fee: 2990,
      refund_fee: 1000,
    });
    env.sim.settleRefunds();
  });

  it('has no bill for a day until 10:00 the next day (Beijing), then serves it', async () => {
    clock = NEXT_DAY_10 - 60_000;
    const early = await rawBill({ bill_date: DAY, bill_type: 'ALL' });
    expect(early.body.toString()).toContain('<return_msg><![CDATA[Bill Creating]]></return_msg>');
    clock = NEXT_DAY_10;
    const ready = await rawBill({ bill_date: DAY, bill_type: 'ALL' });
    expect(ready.status).toBe(200);
    expect(ready.body.toString('utf8')).toContain(paidNo);
  });

  it('writes the ALL bill as WeChat does: BOM, CRLF, back-ticks, yuan, five-decimal fees, summary', async () => {
    clock = NEXT_DAY_10 + HOUR;
    const text = (await rawBill({ bill_date: DAY, bill_type: 'ALL' })).body.toString('utf8');
    expect(text.startsWith('\uFEFF交易时间,')).toBe(true);
    const lines = text.split('\r\n');
    expect(lines[0]).toBe(`\uFEFF${BILL_ALL_COLUMNS.join(',')}`);
    expect(lines.at(-1)).toBe('');
    const dataLines = lines.slice(1, -3);
    expect(dataLines.length).toBeGreaterThanOrEqual(2);
    for (const l of dataLines) expect(l.startsWith('`')).toBe(true);
    expect(lines.at(-3)).toBe(BILL_SUMMARY_COLUMNS.join(','));
    const bill = parseBill(text, 'ALL');
    const pay = bill.rows.find((r) => r['商户订单号'] === paidNo && r['交易状态'] === 'SUCCESS')!;
    expect(pay).toMatchObject({
      订单金额: '29.90',
      应结订单金额: '29.90',
      // 29.90 × 0.60% = 0.1794, rounded to the fen and printed with five decimals.
      手续费: '0.18000',
      费率: '0.60%',
      微信退款单号: '0',
      商户退款单号: '0',
      退款金额: '0.00',
      交易类型: 'JSAPI',
      商户号: MD5_MERCHANT.mchId,
    });
    expect(pay['交易时间']).toBe('2026-03-10 12:00:00');
    const ref = bill.rows.find((r) => r['商户退款单号'] === refundNo)!;
    expect(ref).toMatchObject({
      交易状态: 'REFUND',
      退款状态: 'SUCCESS',
      退款金额: '10.00',
      申请退款金额: '10.00',
      应结订单金额: '0.00',
      手续费: '-0.06000',
      商户订单号: paidNo,
    });
    const fen = (col: string) => bill.rows.reduce((s, r) => s + billFen(r[col], col), 0);
    expect(bill.summary).toMatchObject({ 总交易单数: String(bill.rows.length) });
    expect(billFen(bill.summary['应结订单总金额'], 'x')).toBe(fen('应结订单金额'));
    expect(billFen(bill.summary['退款总金额'], 'x')).toBe(fen('退款金额'));
    expect(billFen(bill.summary['申请退款总金额'], 'x')).toBe(fen('申请退款金额'));
    expect(billFeeMilliFen(bill.summary['手续费总金额'])).toBe(
      bill.rows.reduce((s, r) => s + billFeeMilliFen(r['手续费']), 0),
    );
  });

  it('has the SUCCESS and REFUND column sets', async () => {
    clock = NEXT_DAY_10 + HOUR;
    const success = parseBill(
      (await rawBill({ bill_date: DAY, bill_type: 'SUCCESS' })).body.toString(),
      'SUCCESS',
    );
    expect(success.columns).toEqual([...BILL_SUCCESS_COLUMNS]);
    expect(success.rows.every((r) => r['交易状态'] === 'SUCCESS')).toBe(true);
    const refunds = parseBill(
      (await rawBill({ bill_date: DAY, bill_type: 'REFUND' })).body.toString(),
      'REFUND',
    );
    expect(refunds.columns).toEqual([...BILL_REFUND_COLUMNS]);
    expect(refunds.rows.find((r) => r['商户退款单号'] === refundNo)).toMatchObject({
      交易状态: 'REFUND',
      退款申请时间: '2026-03-10 12:00:00',
      退款成功时间: '2026-03-10 12:00:00',
    });
  });

  it('gzips the same bill for tar_type=GZIP', async () => {
    clock = NEXT_DAY_10 + HOUR;
    const plain = await rawBill({ bill_date: DAY, bill_type: 'ALL' });
    const zipped = await rawBill({ bill_date: DAY, bill_type: 'ALL', tar_type: 'GZIP' });
    expect([zipped.body[0], zipped.body[1]]).toEqual([0x1f, 0x8b]);
    expect(gunzipSync(zipped.body).equals(plain.body)).toBe(true);
  });

  it('answers "No Bill Exist" (error_code 20002) for a day without trades, and refuses bad requests', async () => {
    clock = NEXT_DAY_10 + HOUR;
    const none = (await rawBill({ bill_date: '20260301' })).body.toString();
    expect(none).toContain('<return_code><![CDATA[FAIL]]></return_code>');
    expect(none).toContain('<return_msg><![CDATA[No Bill Exist]]></return_msg>');
    expect(none).toContain('<error_code>20002</error_code>');
    expect((await rawBill({ bill_date: '2026031' })).body.toString()).toContain('invalid bill_date');
    expect((await rawBill({ bill_date: DAY, bill_type: 'X' })).body.toString()).toContain(
      'invalid bill_type',
    );
    expect((await rawBill({ bill_date: DAY, tar_type: 'ZIP' })).body.toString()).toContain(
      'invalid tar_type',
    );
  });

  it('lists a refund made on the merchant platform, which sends the shop no notify', async () => {
    clock = NOON + HOUR;
    const orderNo = await paidOrder(500);
    const before = env.sim.notifies().filter((n) => n.kind === 'refund').length;
    const r = env.sim.merchantPlatformRefund({ outTradeNo: orderNo, refundFee: 200 });
    expect(() => env.sim.merchantPlatformRefund({ outTradeNo: orderNo, refundFee: 301 })).toThrow(
      /at most 300/,
    );
    env.sim.settleRefunds();
    await env.sim.flushNotifies();
    expect(env.sim.notifies().filter((n) => n.kind === 'refund')).toHaveLength(before);
    const q = await env.client(MD5_MERCHANT).refundQuery({ out_refund_no: r.outRefundNo });
    expect(q).toMatchObject({ refund_status_0: 'SUCCESS', refund_fee_0: '200', out_trade_no: orderNo });
    clock = NEXT_DAY_10 + HOUR;
    const bill = parseBill((await rawBill({ bill_date: DAY })).body.toString(), 'ALL');
    expect(bill.rows.find((x) => x['商户退款单号'] === r.outRefundNo)).toMatchObject({
      交易状态: 'REFUND',
      退款状态: 'SUCCESS',
      申请退款金额: '2.00',
    });
  });
});

describe('streaming bill download', () => {
  const downloader = () => {
    const c = env.config(MD5_MERCHANT);
    return createBillDownloader({ ...c, sleep: async () => {} });
  };

  it('reads the same lines from the plain and the gzip answer', async () => {
    clock = NEXT_DAY_10 + HOUR;
    const d = downloader();
    const plain = await collect(await d.download({ bill_date: DAY }));
    const zipped = await d.download({ bill_date: DAY, tar_type: 'GZIP' });
    expect(zipped).toMatchObject({ kind: 'bill', gzip: true });
    expect(await collect(zipped)).toEqual(plain);
    expect(plain[0]).toBe(`\uFEFF${BILL_ALL_COLUMNS.join(',')}`);
    expect(plain.some((l) => l.includes(paidNo))).toBe(true);
  });

  it('tells a day without trades and a bill not generated yet apart from errors', async () => {
    const d = downloader();
    clock = NEXT_DAY_10 + HOUR;
    expect(await d.download({ bill_date: '20260301' })).toMatchObject({ kind: 'no-bill' });
    clock = NEXT_DAY_10 - HOUR;
    expect(await d.download({ bill_date: DAY })).toMatchObject({
      kind: 'not-ready',
      message: 'Bill Creating',
    });
    clock = NEXT_DAY_10 + HOUR;
    await expect(d.download({ bill_date: '20261399' })).rejects.toMatchObject({
      code: 'WXPAY_RETURN_FAIL',
      transient: false,
    });
  });

  it('retries SYSTEMERROR before the bill starts', async () => {
    clock = NEXT_DAY_10 + HOUR;
    env.sim.setFaults({ systemErrorNext: 2 });
    try {
      expect(await collect(await downloader().download({ bill_date: DAY }))).toContainEqual(
        expect.stringContaining(paidNo),
      );
    } finally {
      env.sim.setFaults({ systemErrorNext: 0 });
    }
  });
});

describe('streaming bill download from a misbehaving server', () => {
  let server: http.Server;
  let answer: (res: http.ServerResponse) => void = () => {};
  let url = '';
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => answer(res));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  const d = () =>
    createBillDownloader({
      appid: 'wx2421b1c4370ec43b',
      mchId: '10000100',
      apiKey: MD5_MERCHANT.apiKey,
      signType: 'MD5',
      baseUrl: url,
      sleep: async () => {},
      idleTimeoutMs: 300,
    });
  const csv = [
    `\uFEFF${BILL_ALL_COLUMNS.join(',')}`,
    ...Array.from({ length: 2000 }, (_, i) => `\`2026-03-10 10:00:00,\`wx,\`1,\`0,\`,\`42${i},\`O${i},…`),
  ].join('\r\n');

  it('fails a plain bill cut off mid-way instead of reading half of it', async () => {
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(csv) });
      res.write(csv.slice(0, 20_000));
      setTimeout(() => res.destroy(), 20);
    };
    await expect(collect(await d().download({ bill_date: DAY }))).rejects.toThrow();
  });

  it('fails a gzip bill cut off mid-way', async () => {
    const zipped = gzipSync(csv);
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'application/x-gzip' });
      res.end(zipped.subarray(0, zipped.length - 20));
    };
    await expect(collect(await d().download({ bill_date: DAY, tar_type: 'GZIP' }))).rejects.toThrow();
  });

  it('fails a bill that stalls', async () => {
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(csv.slice(0, 5000));
    };
    await expect(collect(await d().download({ bill_date: DAY }))).rejects.toThrow(/stalled/);
  });

  it('splits lines across chunk borders, multi-byte characters included', async () => {
    const text = `${BILL_ALL_COLUMNS.join(',')}\r\n\`商品名称，中文\r\n\`second`;
    answer = (res) => {
      const bytes = Buffer.from(text, 'utf8');
      res.writeHead(200, { 'content-type': 'text/plain' });
      // One byte at a time: every UTF-8 sequence and every CRLF is split.
      let i = 0;
      const next = () =>
        i < bytes.length ? res.write(bytes.subarray(i, ++i), () => setImmediate(next)) : res.end();
      next();
    };
    expect(await collect(await d().download({ bill_date: DAY }))).toEqual(text.split('\r\n'));
  });
});

describe('bill amounts', () => {
  it('reads yuan, five-decimal fees and rates exactly', () => {
    expect(billFen('29.90', 'x')).toBe(2990);
    expect(billFen('-0.05', 'x')).toBe(-5);
    expect(() => billFen('29.9', 'x')).toThrow(expect.objectContaining({ code: 'BILL_MALFORMED' }));
    expect(() => billFen('1e3', 'x')).toThrow(expect.objectContaining({ code: 'BILL_MALFORMED' }));
    expect(billFeeMilliFen('0.18000')).toBe(18_000);
    expect(billFeeMilliFen('0.00006')).toBe(6);
    expect(billFeeMilliFen('-1.56000')).toBe(-156_000);
    expect(billFeeMilliFen('0')).toBe(0);
    expect(billRatePpm('0.60%')).toBe(6000);
    expect(billRatePpm('0.38%')).toBe(3800);
    expect(billRatePpm('1%')).toBe(10_000);
  });
});
