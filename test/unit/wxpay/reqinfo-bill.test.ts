import { createCipheriv, createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CryptoError } from '../../../cloudfunctions/shared/errors';
import { fenToYuan, yuanToFen } from '../../../cloudfunctions/shared/money';
import {
  BILL_ALL_COLUMNS,
  BILL_SUMMARY_COLUMNS,
  decryptReqInfo,
  encryptRefundNotifyForTest,
  encryptReqInfo,
  formatBill,
  parseBill,
  parseXml,
  signPayNotifyForTest,
  verify,
} from '../../../cloudfunctions/shared/wxpay';

const KEY = '192006250b4c09247ec02edce69f6a2d';

// The plaintext of the official 退款结果通知 "req_info解密后的示例".
const OFFICIAL_PLAIN = {
  out_refund_no: '131811191610442717309',
  out_trade_no: '71106718111915575302817',
  refund_account: 'REFUND_SOURCE_RECHARGE_FUNDS',
  refund_fee: '3960',
  refund_id: '50000408942018111907145868882',
  refund_recv_accout: '支付用户零钱',
  refund_request_source: 'API',
  refund_status: 'SUCCESS',
  settlement_refund_fee: '3960',
  settlement_total_fee: '3960',
  success_time: '2018-11-19 16:24:13',
  total_fee: '3960',
  transaction_id: '4200000215201811190261405420',
};

describe('decryptReqInfo', () => {
  it('round-trips the official sample fields', () => {
    expect(decryptReqInfo(encryptReqInfo(OFFICIAL_PLAIN, KEY), KEY)).toEqual(OFFICIAL_PLAIN);
  });
  it('uses the 32 ASCII bytes of lower-case md5(key), as an independent implementation does', () => {
    // Encrypt with the algorithm spelled out in the doc, not with our helper.
    const aesKey = Buffer.from(createHash('md5').update(KEY).digest('hex'), 'utf8');
    expect(aesKey).toHaveLength(32);
    const c = createCipheriv('aes-256-ecb', aesKey, null);
    const xml =
      '<root><out_refund_no><![CDATA[R1]]></out_refund_no><refund_status><![CDATA[SUCCESS]]></refund_status></root>';
    const b64 = Buffer.concat([c.update(xml, 'utf8'), c.final()]).toString('base64');
    expect(decryptReqInfo(b64, KEY)).toEqual({ out_refund_no: 'R1', refund_status: 'SUCCESS' });
  });
  it('fails with a typed error under the wrong key, never returning garbage', () => {
    const enc = encryptReqInfo(OFFICIAL_PLAIN, KEY);
    for (let i = 0; i < 50; i++) {
      expect(() => decryptReqInfo(enc, `wrongkey${i}`)).toThrow(CryptoError);
    }
  });
  it('refuses non-base64 and truncated input', () => {
    expect(() =>
      decryptReqInfo('T87GAHG17TGAHG1TGHAHAHA1Y1CIOA9UGJH1GAHV871HAGAGQYQQPOOJMXNBCXBVNMNMAJAA', KEY),
    ).toThrow(expect.objectContaining({ code: 'REQ_INFO_INVALID' }));
    expect(() => decryptReqInfo('not base64!', KEY)).toThrow(
      expect.objectContaining({ code: 'REQ_INFO_INVALID' }),
    );
    expect(() => decryptReqInfo('', KEY)).toThrow(CryptoError);
  });
});

describe('notify test helpers', () => {
  const keys = { appid: 'wx2421b1c4370ec43b', mchId: '10000100', apiKey: KEY };
  it('build pay notifies that verify with the codec, for both sign types', () => {
    for (const signType of ['MD5', 'HMAC-SHA256'] as const) {
      const xml = signPayNotifyForTest({ ...keys, signType }, { out_trade_no: 'T1', total_fee: 100 });
      const p = parseXml(xml);
      expect(verify(p, KEY, signType)).toBe(true);
      expect(p['total_fee']).toBe('100');
    }
  });
  it('can leave sign_type out of an HMAC notify, as WeChat does', () => {
    const p = parseXml(
      signPayNotifyForTest(
        { ...keys, signType: 'HMAC-SHA256' },
        { out_trade_no: 'T1', total_fee: 1 },
        { includeSignType: false },
      ),
    );
    expect(p['sign_type']).toBeUndefined();
    expect(verify(p, KEY, 'HMAC-SHA256')).toBe(true);
  });
  it('build refund notifies whose req_info decrypts', () => {
    const p = parseXml(
      encryptRefundNotifyForTest(keys, {
        out_refund_no: 'R1',
        out_trade_no: 'T1',
        refund_fee: 50,
        total_fee: 100,
        refund_status: 'SUCCESS',
      }),
    );
    expect(p['sign']).toBeUndefined();
    expect(decryptReqInfo(p['req_info']!, KEY)).toMatchObject({
      out_refund_no: 'R1',
      refund_fee: '50',
      refund_status: 'SUCCESS',
    });
  });
});

describe('bills', () => {
  // The shape of the official ALL bill sample (downloadbill doc).
  const SAMPLE = [
    BILL_ALL_COLUMNS.join(','),
    '`2014-11-10 16:33:45,`wx2421b1c4370ec43b,`10000100,`0,`1000,`1001690740201411100005734289,`1415640626,`085e9858e3ba5186aafcbaed1,`MICROPAY,`SUCCESS,`OTHERS,`CNY,`0.01,`0.0,`0,`0,`0,`0,`,`,`被扫支付测试,`订单额外描述,`0,`0.60%,`0.01,`0.00,`',
    '`2014-11-10 16:46:14,`wx2421b1c4370ec43b,`10000100,`0,`1000,`1002780740201411100005729794,`1415635270,`085e9858e90ca40c0b5aee463,`MICROPAY,`SUCCESS,`OTHERS,`CNY,`0.01,`0.0,`0,`0,`0,`0,`,`,`被扫支付测试,`订单额外描述,`0,`0.60%,`0.01,`0.00,`',
    BILL_SUMMARY_COLUMNS.join(','),
    '`2,`0.02,`0.0,`0.0,`0,`0.02,`0.00',
    '',
  ].join('\r\n');

  it('parses rows and the summary of the official sample', () => {
    const bill = parseBill(SAMPLE);
    expect(bill.rows).toHaveLength(2);
    expect(bill.rows[0]!['商户订单号']).toBe('1415640626');
    expect(bill.rows[1]!['微信订单号']).toBe('1002780740201411100005729794');
    expect(bill.summary['总交易单数']).toBe('2');
    expect(yuanToFen(bill.summary['应结订单总金额']!)).toBe(2);
  });
  it('round-trips through formatBill, including commas in product names', () => {
    const bill = parseBill(SAMPLE);
    bill.rows[0]!['商品名称'] = '苹果, 香蕉';
    expect(parseBill(formatBill(bill))).toEqual(bill);
  });
  it('refuses a body that is not a bill', () => {
    expect(() => parseBill('<xml><return_code>FAIL</return_code></xml>')).toThrow(
      expect.objectContaining({ code: 'BILL_MALFORMED' }),
    );
    expect(() => parseBill(SAMPLE.replace(',`0.60%', ''))).toThrow(
      expect.objectContaining({ code: 'BILL_MALFORMED' }),
    );
  });
});

describe('money', () => {
  it('converts yuan strings to fen without floating point error', () => {
    expect(yuanToFen('9.8')).toBe(980);
    expect(yuanToFen('1159.89')).toBe(115989);
    expect(yuanToFen('0.01')).toBe(1);
    expect(fenToYuan(115989)).toBe('1159.89');
    expect(fenToYuan(5)).toBe('0.05');
    expect(() => yuanToFen('1.234')).toThrow();
  });
});
