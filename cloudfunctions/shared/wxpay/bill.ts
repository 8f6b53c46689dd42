/**
 * The downloadbill CSV (对账单), pure: column sets, a line-by-line reader that keeps no more
 * than one row, and the amount formats. The layout, as WeChat sends it:
 *
 *   <BOM>交易时间,公众账号ID,…            header (which columns depends on bill_type)
 *   `2026-01-01 10:00:00,`wx…,…,`        one line per trade; every value starts with a back-tick
 *   总交易单数,应结订单总金额,…             summary header
 *   `48,`5.76,`1.42,`0.00,`0.01000,…     summary values
 *
 * Amounts are yuan with two decimals, except 手续费 (the fee), which has five; rates read
 * like `0.60%`. Lines end with CRLF.
 */
import { BillError } from '../errors';

export type BillType = 'ALL' | 'SUCCESS' | 'REFUND';

/** Columns of a `bill_type=ALL` bill, in WeChat's order. */
export const BILL_ALL_COLUMNS = [
  '交易时间',
  '公众账号ID',
  '商户号',
  '特约商户号',
  '设备号',
  '微信订单号',
  '商户订单号',
  '用户标识',
  '交易类型',
  '交易状态',
  '付款银行',
  '货币种类',
  '应结订单金额',
  '代金券金额',
  '微信退款单号',
  '商户退款单号',
  '退款金额',
  '充值券退款金额',
  '退款类型',
  '退款状态',
  '商品名称',
  '商户数据包',
  '手续费',
  '费率',
  '订单金额',
  '申请退款金额',
  '费率备注',
] as const;

/** `bill_type=SUCCESS`: payments only, so no refund columns. */
export const BILL_SUCCESS_COLUMNS = [
  '交易时间',
  '公众账号ID',
  '商户号',
  '特约商户号',
  '设备号',
  '微信订单号',
  '商户订单号',
  '用户标识',
  '交易类型',
  '交易状态',
  '付款银行',
  '货币种类',
  '应结订单金额',
  '代金券金额',
  '商品名称',
  '商户数据包',
  '手续费',
  '费率',
  '订单金额',
  '费率备注',
] as const;

/** `bill_type=REFUND`: refunds only, with when each was applied for and when it succeeded. */
export const BILL_REFUND_COLUMNS = [
  '交易时间',
  '公众账号ID',
  '商户号',
  '特约商户号',
  '设备号',
  '微信订单号',
  '商户订单号',
  '用户标识',
  '交易类型',
  '交易状态',
  '付款银行',
  '货币种类',
  '应结订单金额',
  '代金券金额',
  '退款申请时间',
  '退款成功时间',
  '微信退款单号',
  '商户退款单号',
  '退款金额',
  '充值券退款金额',
  '退款类型',
  '退款状态',
  '商品名称',
  '商户数据包',
  '手续费',
  '费率',
  '订单金额',
  '申请退款金额',
  '费率备注',
] as const;

export const BILL_COLUMNS: Record<BillType, readonly string[]> = {
  ALL: BILL_ALL_COLUMNS,
  SUCCESS: BILL_SUCCESS_COLUMNS,
  REFUND: BILL_REFUND_COLUMNS,
};

export const BILL_SUMMARY_COLUMNS = [
  '总交易单数',
  '应结订单总金额',
  '退款总金额',
  '充值券退款总金额',
  '手续费总金额',
  '订单总金额',
  '申请退款总金额',
] as const;

export type BillRow = Record<string, string>;

export interface Bill {
  columns: string[];
  rows: BillRow[];
  summaryColumns: string[];
  summary: Record<string, string>;
}

// Every data field starts with a back-tick (so spreadsheets keep long numbers as text);
// splitting on ",`" also keeps commas inside a product name intact.
function splitRow(line: string, lineNo: number): string[] {
  if (!line.startsWith('`'))
    throw new BillError('BILL_MALFORMED', `bill line ${lineNo} is not a back-tick row`);
  return line.slice(1).split(',`');
}

function checkLength(columns: readonly string[], values: string[], lineNo: number): string[] {
  if (values.length !== columns.length) {
    throw new BillError(
      'BILL_MALFORMED',
      `bill line ${lineNo} has ${values.length} fields, its header has ${columns.length}`,
    );
  }
  return values;
}

function zip(columns: readonly string[], values: string[]): BillRow {
  const row: BillRow = {};
  for (let i = 0; i < columns.length; i++) row[columns[i]!] = values[i]!;
  return row;
}

/**
 * Reads a bill one line at a time, so a bill of any size costs one row of memory. Feed every
 * line (without its line break) to `line()`, which returns the trade row's values, if the
 * line held one, in header order (`index()` finds a column; `row()` makes an object, which
 * costs more than the parsing itself on a large bill); `end()` then returns the summary and
 * refuses a bill that stopped early.
 */
export class BillReader {
  private lineNo = 0;
  private state: 'header' | 'rows' | 'summary' | 'done' = 'header';
  columns: readonly string[] = [];
  summaryColumns: readonly string[] = [];
  summary: Record<string, string> | undefined;
  rows = 0;

  /** `expected`: the bill_type asked for; a bill with another header is refused. */
  constructor(private readonly expected?: BillType) {}

  line(raw: string): string[] | undefined {
    this.lineNo++;
    const text = (this.lineNo === 1 ? raw.replace(/^\uFEFF/, '') : raw).trimEnd();
    if (text === '') return undefined;
    switch (this.state) {
      case 'header': {
        const columns = text.split(',');
        if (columns[0] !== '交易时间')
          throw new BillError('BILL_MALFORMED', 'bill does not start with the 交易时间 header');
        if (this.expected && columns.join(',') !== BILL_COLUMNS[this.expected].join(',')) {
          throw new BillError(
            'BILL_MALFORMED',
            `bill header is not WeChat's ${this.expected} column set: ${text.slice(0, 120)}`,
          );
        }
        this.columns = columns;
        this.state = 'rows';
        return undefined;
      }
      case 'rows': {
        if (text.charCodeAt(0) === 96 /* ` */) {
          this.rows++;
          return checkLength(this.columns, splitRow(text, this.lineNo), this.lineNo);
        }
        const summaryColumns = text.split(',');
        if (summaryColumns[0] !== '总交易单数')
          throw new BillError('BILL_MALFORMED', `bill line ${this.lineNo} is neither a row nor the summary`);
        this.summaryColumns = summaryColumns;
        this.state = 'summary';
        return undefined;
      }
      case 'summary':
        this.summary = zip(
          this.summaryColumns,
          checkLength(this.summaryColumns, splitRow(text, this.lineNo), this.lineNo),
        );
        this.state = 'done';
        return undefined;
      case 'done':
        throw new BillError('BILL_MALFORMED', 'bill must end with one summary header and one summary row');
    }
  }

  /** Where `column` is in this bill's rows; BILL_MALFORMED when the header lacks it. */
  index(column: string): number {
    const i = this.columns.indexOf(column);
    if (i < 0) throw new BillError('BILL_MALFORMED', `bill has no ${column} column`);
    return i;
  }

  /** A row's values as an object keyed by column. */
  row(values: string[]): BillRow {
    return zip(this.columns, values);
  }

  /** The summary; throws when the bill ended before it (a cut-off download). */
  end(): Record<string, string> {
    if (this.state === 'header')
      throw new BillError('BILL_MALFORMED', 'bill needs a header, a summary header and a summary row');
    if (!this.summary)
      throw new BillError('BILL_MALFORMED', 'bill must end with one summary header and one summary row');
    return this.summary;
  }
}

/** Parses a whole downloadbill CSV body held in memory (small bills, tests). */
export function parseBill(csv: string, expected?: BillType): Bill {
  const reader = new BillReader(expected);
  const rows: BillRow[] = [];
  for (const line of csv.split(/\r?\n/)) {
    const values = reader.line(line);
    if (values) rows.push(reader.row(values));
  }
  const summary = reader.end();
  return {
    columns: [...reader.columns],
    rows,
    summaryColumns: [...reader.summaryColumns],
    summary,
  };
}

/** One bill line the way WeChat writes it: every value behind a back-tick. */
export function formatBillRow(columns: readonly string[], row: BillRow): string {
  let out = '';
  for (let i = 0; i < columns.length; i++) out += `${i === 0 ? '' : ','}\`${row[columns[i]!] ?? ''}`;
  return out;
}

/** Writes a bill the way WeChat does (used by the simulator; `parseBill` reads it back). */
export function formatBill(bill: Bill): string {
  return [
    `\uFEFF${bill.columns.join(',')}`,
    ...bill.rows.map((r) => formatBillRow(bill.columns, r)),
    bill.summaryColumns.join(','),
    formatBillRow(bill.summaryColumns, bill.summary),
    '',
  ].join('\r\n');
}

// ---- amounts -------------------------------------------------------------------------

const YUAN = /^(-?)(\d{1,12})\.(\d{2})$/;
// Fees are counted in thousandths of a fen: ten integer digits keep every value a safe integer
// (below 2^53), twelve would not.
const FEE = /^(-?)(\d{1,10})(?:\.(\d{1,5}))?$/;
const RATE = /^(\d{1,3})(?:\.(\d{1,4}))?%$/;

/** A bill amount (`12.34`, `-0.05`) in integer fen; BILL_MALFORMED for anything else. */
export function billFen(value: string | undefined, column: string): number {
  // Stryker disable next-line StringLiteral: any stand-in for a missing value fails the pattern too.
  const m = YUAN.exec(value ?? '');
  if (!m)
    throw new BillError('BILL_MALFORMED', `${column} is not an amount in yuan: ${JSON.stringify(value)}`);
  const fen = Number(m[2]) * 100 + Number(m[3]);
  return m[1] === '-' && fen !== 0 ? -fen : fen;
}

/**
 * The fee column (`0.18000`, `-1.56000`) in thousandths of a fen, exactly: WeChat prints five
 * decimals, and rounds each trade's fee to the fen, but a sum must never be rounded twice.
 */
export function billFeeMilliFen(value: string | undefined, column = '手续费'): number {
  // Stryker disable next-line StringLiteral: any stand-in for a missing value fails the pattern too.
  const m = FEE.exec(value ?? '');
  if (!m) throw new BillError('BILL_MALFORMED', `${column} is not a fee in yuan: ${JSON.stringify(value)}`);
  const milli = Number(m[2]) * 100_000 + Number((m[3] ?? '').padEnd(5, '0'));
  return m[1] === '-' && milli !== 0 ? -milli : milli;
}

/** A rate (`0.60%`) in parts per million (6000). */
export function billRatePpm(value: string | undefined): number {
  // Stryker disable next-line StringLiteral: any stand-in for a missing value fails the pattern too.
  const m = RATE.exec(value ?? '');
  if (!m) throw new BillError('BILL_MALFORMED', `费率 is not a percentage: ${JSON.stringify(value)}`);
  return Number(m[1]) * 10_000 + Number((m[2] ?? '').padEnd(4, '0'));
}

/** Fen as WeChat's fee column prints them: yuan with five decimals. */
export function formatFeeYuan(fen: number): string {
  const sign = fen < 0 ? '-' : '';
  const abs = Math.abs(fen);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}000`;
}
