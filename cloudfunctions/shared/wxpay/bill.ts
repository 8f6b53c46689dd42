import { BillError } from '../errors';

/** Columns of a `bill_type=ALL` downloadbill, in WeChat's order. */
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

export const BILL_SUMMARY_COLUMNS = [
  '总交易单数',
  '应结订单总金额',
  '退款总金额',
  '充值券退款总金额',
  '手续费总金额',
  '订单总金额',
  '申请退款总金额',
] as const;

export interface Bill {
  columns: string[];
  rows: Record<string, string>[];
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

function zip(columns: string[], values: string[], lineNo: number): Record<string, string> {
  if (values.length !== columns.length) {
    throw new BillError(
      'BILL_MALFORMED',
      `bill line ${lineNo} has ${values.length} fields, its header has ${columns.length}`,
    );
  }
  const row: Record<string, string> = {};
  columns.forEach((c, i) => {
    row[c] = values[i]!;
  });
  return row;
}

/** Parses a downloadbill CSV body: header, back-tick rows, summary header, summary row. */
export function parseBill(csv: string): Bill {
  const lines = csv
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .map((l) => l.replace(/\s+$/, ''))
    .filter((l) => l !== '');
  if (lines.length < 3)
    throw new BillError('BILL_MALFORMED', 'bill needs a header, a summary header and a summary row');
  const columns = lines[0]!.split(',');
  if (columns[0] !== '交易时间')
    throw new BillError('BILL_MALFORMED', 'bill does not start with the 交易时间 header');
  const rows: Record<string, string>[] = [];
  let i = 1;
  for (; i < lines.length && lines[i]!.startsWith('`'); i++)
    // Stryker disable next-line ArithmeticOperator: these lines start with a back-tick, so splitRow never names them (equivalent).
    rows.push(zip(columns, splitRow(lines[i]!, i + 1), i + 1));
  if (i + 2 !== lines.length) {
    throw new BillError('BILL_MALFORMED', 'bill must end with one summary header and one summary row');
  }
  const summaryLine = lines[i + 1]!;
  const summaryColumns = lines[i]!.split(',');
  if (summaryColumns[0] !== '总交易单数')
    throw new BillError('BILL_MALFORMED', 'bill summary header is missing');
  return { columns, rows, summaryColumns, summary: zip(summaryColumns, splitRow(summaryLine, i + 2), i + 2) };
}

/** Writes a bill the way WeChat does (used by the simulator; `parseBill` reads it back). */
export function formatBill(bill: Bill): string {
  const row = (cols: string[], r: Record<string, string>) => cols.map((c) => `\`${r[c] ?? ''}`).join(',');
  return [
    bill.columns.join(','),
    ...bill.rows.map((r) => row(bill.columns, r)),
    bill.summaryColumns.join(','),
    row(bill.summaryColumns, bill.summary),
    '',
  ].join('\r\n');
}
