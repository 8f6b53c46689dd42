/**
 * The bill reader the daily check feeds line by line, and the amount formats it reads: what
 * it accepts, what it refuses (with the code and the message that says where), and the exact
 * integers it returns. Written for the mutants the reader's rewrite left alive (TESTING.md).
 */
import { describe, expect, it } from 'vitest';
import { BillError } from '../../../cloudfunctions/shared/errors';
import {
  BILL_ALL_COLUMNS,
  BILL_COLUMNS,
  BILL_REFUND_COLUMNS,
  BILL_SUCCESS_COLUMNS,
  BILL_SUMMARY_COLUMNS,
  BillReader,
  billFeeMilliFen,
  billFen,
  billRatePpm,
  formatBill,
  formatBillRow,
  formatFeeYuan,
  parseBill,
} from '../../../cloudfunctions/shared/wxpay/bill';

function thrown(fn: () => unknown): BillError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BillError);
    return e as BillError;
  }
  throw new Error('expected a throw');
}

const SUMMARY = BILL_SUMMARY_COLUMNS.join(',');
const SUM = '`1,`0.01,`0.00,`0.00,`0.00000,`0.01,`0.00';
const rowFor = (columns: readonly string[], first = '2026-03-10 10:00:00') =>
  formatBillRow(columns, Object.fromEntries(columns.map((c, i) => [c, i === 0 ? first : `v${i}`])));

describe('BillReader', () => {
  it('returns each trade row in header order, and the summary at the end', () => {
    const r = new BillReader('ALL');
    expect(r.line(`\uFEFF${BILL_ALL_COLUMNS.join(',')}`)).toBeUndefined();
    const values = r.line(rowFor(BILL_ALL_COLUMNS));
    expect(values).toHaveLength(BILL_ALL_COLUMNS.length);
    expect(values![0]).toBe('2026-03-10 10:00:00');
    expect(values![6]).toBe('v6');
    expect(r.row(values!)['商户订单号']).toBe('v6');
    expect(r.index('商户订单号')).toBe(6);
    expect(r.index('交易时间')).toBe(0);
    expect(r.line('')).toBeUndefined();
    expect(r.line(SUMMARY)).toBeUndefined();
    expect(r.line(SUM)).toBeUndefined();
    expect(r.rows).toBe(1);
    expect(r.end()).toEqual({
      总交易单数: '1',
      应结订单总金额: '0.01',
      退款总金额: '0.00',
      充值券退款总金额: '0.00',
      手续费总金额: '0.00000',
      订单总金额: '0.01',
      申请退款总金额: '0.00',
    });
    expect(r.summaryColumns).toEqual([...BILL_SUMMARY_COLUMNS]);
  });

  it('refuses a column the header does not have, naming it', () => {
    const r = new BillReader();
    r.line(BILL_SUCCESS_COLUMNS.join(','));
    expect(thrown(() => r.index('退款金额'))).toMatchObject({
      code: 'BILL_MALFORMED',
      message: 'bill has no 退款金额 column',
    });
  });

  it.each(['ALL', 'SUCCESS', 'REFUND'] as const)(
    'accepts exactly WeChat’s %s header when it asked for it',
    (type) => {
      const r = new BillReader(type);
      r.line(BILL_COLUMNS[type].join(','));
      expect(r.columns).toEqual([...BILL_COLUMNS[type]]);
    },
  );

  it('refuses another column set than the one asked for, quoting at most 120 characters of it', () => {
    const header = BILL_REFUND_COLUMNS.join(',');
    expect(thrown(() => new BillReader('ALL').line(header))).toMatchObject({
      code: 'BILL_MALFORMED',
      message: `bill header is not WeChat's ALL column set: ${header.slice(0, 120)}`,
    });
    expect(header.length).toBeGreaterThan(120);
    // One column more or renamed is another column set too.
    for (const bad of [
      `${BILL_REFUND_COLUMNS.join(',')},x`,
      BILL_REFUND_COLUMNS.join(',').replace('退款成功时间', '退款时间'),
    ]) {
      expect(thrown(() => new BillReader('REFUND').line(bad)).message).toMatch(
        /^bill header is not WeChat's REFUND column set: /,
      );
    }
    // Without an expected type any 交易时间 header is read.
    expect(() => new BillReader().line(header)).not.toThrow();
  });

  it('strips a byte-order mark only from the first line, and blank lines anywhere', () => {
    const r = new BillReader();
    expect(r.line('   ')).toBeUndefined();
    // The first line was blank: a BOM on the second is not stripped, so this is no header.
    expect(thrown(() => r.line(`\uFEFF${BILL_ALL_COLUMNS.join(',')}`))).toMatchObject({
      message: 'bill does not start with the 交易时间 header',
    });
  });

  it('has no columns before its header', () => {
    const r = new BillReader();
    expect(r.columns).toEqual([]);
    expect(r.summaryColumns).toEqual([]);
    expect(thrown(() => r.index('交易时间')).message).toBe('bill has no 交易时间 column');
  });

  it('keeps a byte-order mark inside the first line', () => {
    const r = new BillReader();
    r.line('交易时间,a\uFEFFb');
    expect(r.columns).toEqual(['交易时间', 'a\uFEFFb']);
  });

  it('reads trailing whitespace as nothing but keeps leading whitespace', () => {
    const r = new BillReader();
    r.line(`${BILL_SUCCESS_COLUMNS.join(',')} \t`);
    expect(r.columns.at(-1)).toBe('费率备注');
    expect(thrown(() => r.line(` ${rowFor(BILL_SUCCESS_COLUMNS)}`))).toMatchObject({
      message: 'bill line 2 is neither a row nor the summary',
    });
  });

  it('counts a row only when it is one', () => {
    const r = new BillReader();
    r.line(BILL_SUCCESS_COLUMNS.join(','));
    r.line(rowFor(BILL_SUCCESS_COLUMNS));
    r.line(rowFor(BILL_SUCCESS_COLUMNS));
    r.line(SUMMARY);
    r.line(SUM);
    expect(r.rows).toBe(2);
  });

  it('refuses a second summary row, and anything after it', () => {
    const r = new BillReader();
    for (const l of [BILL_SUCCESS_COLUMNS.join(','), SUMMARY, SUM]) r.line(l);
    expect(thrown(() => r.line(SUM))).toMatchObject({
      code: 'BILL_MALFORMED',
      message: 'bill must end with one summary header and one summary row',
    });
  });

  it('refuses a bill cut off after its rows or before its summary row', () => {
    const r = new BillReader();
    r.line(BILL_SUCCESS_COLUMNS.join(','));
    r.line(rowFor(BILL_SUCCESS_COLUMNS));
    expect(thrown(() => r.end()).message).toBe('bill must end with one summary header and one summary row');
    r.line(SUMMARY);
    expect(thrown(() => r.end()).message).toBe('bill must end with one summary header and one summary row');
    expect(thrown(() => new BillReader().end()).message).toBe(
      'bill needs a header, a summary header and a summary row',
    );
  });

  it('splits only on ",`", so commas inside a value stay', () => {
    const b = parseBill(
      formatBill({
        columns: ['交易时间', '商品名称'],
        rows: [{ 交易时间: 't', 商品名称: '苹果,梨' }],
        summaryColumns: ['总交易单数'],
        summary: { 总交易单数: '1' },
      }),
    );
    // Strict: a row or summary has exactly its header's keys, nothing past the last column.
    expect(b.rows).toStrictEqual([{ 交易时间: 't', 商品名称: '苹果,梨' }]);
    expect(b.summary).toStrictEqual({ 总交易单数: '1' });
    expect(b.summaryColumns).toEqual(['总交易单数']);
  });

  it('parseBill refuses a bill of another type than the one asked for', () => {
    const csv = [BILL_ALL_COLUMNS.join(','), SUMMARY, SUM].join('\r\n');
    expect(parseBill(csv, 'ALL').columns).toEqual([...BILL_ALL_COLUMNS]);
    expect(thrown(() => parseBill(csv, 'SUCCESS')).message).toMatch(
      /^bill header is not WeChat's SUCCESS column set/,
    );
  });
});

describe('bill amounts', () => {
  it.each([
    ['0.00', 0],
    ['-0.00', 0],
    ['0.01', 1],
    ['-12.34', -1234],
    ['999999999999.99', 99_999_999_999_999],
  ])('reads the yuan amount %j as %d fen', (text, fen) => {
    expect(Object.is(billFen(text, '应结订单金额'), fen)).toBe(true);
  });

  it.each(['', '1', '1.2', '1.234', '+1.00', '1,00', ' 1.00', '1.00 ', '1000000000000.00', '.50', '--1.00'])(
    'refuses %j as a yuan amount, naming the column and the value',
    (text) => {
      expect(thrown(() => billFen(text, '退款金额'))).toMatchObject({
        code: 'BILL_MALFORMED',
        message: `退款金额 is not an amount in yuan: ${JSON.stringify(text)}`,
      });
    },
  );

  it('refuses a missing amount', () => {
    expect(thrown(() => billFen(undefined, '订单金额')).message).toBe(
      '订单金额 is not an amount in yuan: undefined',
    );
    expect(thrown(() => billFeeMilliFen(undefined)).message).toBe('手续费 is not a fee in yuan: undefined');
    expect(thrown(() => billRatePpm(undefined)).message).toBe('费率 is not a percentage: undefined');
  });

  it.each([
    ['0', 0],
    ['-0.00000', 0],
    ['1', 100_000],
    ['1.5', 150_000],
    ['0.00001', 1],
    ['-0.01000', -1000],
    ['12345678.90123', 1_234_567_890_123],
    ['-9999999999.99999', -999_999_999_999_999],
  ])('reads the fee %j as %d thousandths of a fen', (text, milli) => {
    expect(Object.is(billFeeMilliFen(text), milli)).toBe(true);
  });

  it.each(['', '0.000001', '1.', '.1', '+1', '1e3', '10000000000', '99999999999.99999', ' 1'])(
    'refuses %j as a fee, naming the column',
    (text) => {
      expect(thrown(() => billFeeMilliFen(text, '手续费总金额'))).toMatchObject({
        code: 'BILL_MALFORMED',
        message: `手续费总金额 is not a fee in yuan: ${JSON.stringify(text)}`,
      });
      expect(thrown(() => billFeeMilliFen(text)).message).toBe(
        `手续费 is not a fee in yuan: ${JSON.stringify(text)}`,
      );
    },
  );

  it.each([
    ['0%', 0],
    ['0.6%', 6000],
    ['0.0001%', 1],
    ['100%', 1_000_000],
    ['999.9999%', 9_999_999],
  ])('reads the rate %j as %d parts per million', (text, ppm) => {
    expect(billRatePpm(text)).toBe(ppm);
  });

  it.each(['', '0.60', '1000%', '0.00001%', '-1%', '.5%', '1.%', ' 1%', '1% '])(
    'refuses %j as a rate',
    (text) => {
      expect(thrown(() => billRatePpm(text))).toMatchObject({
        code: 'BILL_MALFORMED',
        message: `费率 is not a percentage: ${JSON.stringify(text)}`,
      });
    },
  );

  it.each([
    [0, '0.00000'],
    [1, '0.01000'],
    [18, '0.18000'],
    [100, '1.00000'],
    [12_345, '123.45000'],
    [-156, '-1.56000'],
    [-5, '-0.05000'],
  ])('prints %d fen as the fee column %j', (fen, text) => {
    expect(formatFeeYuan(fen)).toBe(text);
    expect(billFeeMilliFen(text)).toBe(fen * 1000);
  });
});
