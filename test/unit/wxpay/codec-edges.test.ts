/**
 * The codec's refusals, each with the code a caller switches on and the message that says
 * which rule was broken, and the edges of what it accepts. Found by mutation testing
 * (TESTING.md): each case here was a bug no other test noticed.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type BillError, CryptoError, XmlError } from '../../../cloudfunctions/shared/errors';
import {
  BILL_ALL_COLUMNS,
  BILL_SUMMARY_COLUMNS,
  canonicalString,
  decryptReqInfo,
  encryptReqInfo,
  formatBill,
  parseBill,
  parseXml,
  replyXml,
  SIGN_TYPES,
  sign,
  toXml,
  verify,
  withSign,
} from '../../../cloudfunctions/shared/wxpay';

const KEY = '192006250b4c09247ec02edce69f6a2d';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describe('parseXml refusals', () => {
  it.each([
    ['an empty body', '', 'XML_EMPTY', /^XML body is empty$/],
    ['a body of whitespace', ' \n\t ', 'XML_EMPTY', /^XML body is empty$/],
    [
      'a DOCTYPE',
      '<!DOCTYPE xml><xml><a>1</a></xml>',
      'XML_DOCTYPE',
      /^XML with a DOCTYPE or entity declaration is refused$/,
    ],
    ['a NUL character', '<xml><a>x\u0000</a></xml>', 'XML_MALFORMED', /^XML contains a NUL character$/],
    ['a broken document', '<xml><a>1</xml>', 'XML_MALFORMED', /^XML is not well-formed: .+ \(line 1\)$/],
    ['another root', '<a>1</a>', 'XML_ROOT', /^XML root must be <xml>, got <a>$/],
    [
      'a byte-order mark before the declaration',
      '\uFEFF<?xml version="1.0"?><xml><a>1</a></xml>',
      'XML_ROOT',
      /^XML root must be <xml>, got text, <xml>$/,
    ],
    ['text at the root', '<xml>text</xml>', 'XML_MALFORMED', /^text directly inside <xml> is not allowed$/],
    [
      'text between fields',
      '<xml><a>1</a>text</xml>',
      'XML_MALFORMED',
      /^text directly inside <xml> is not allowed$/,
    ],
    ['a nested field', '<xml><a><b>1</b></a></xml>', 'XML_NESTED', /^element <a> must not contain elements$/],
    [
      'deep nesting',
      '<xml><a><b><c><d><e>1</e></d></c></b></a></xml>',
      'XML_NESTED',
      /^XML elements must not be nested$/,
    ],
    [
      'a repeated field',
      '<xml><a>1</a><a>2</a></xml>',
      'XML_DUPLICATE',
      /^element <a> appears more than once$/,
    ],
    [
      'a name that is no APIv2 field',
      '<xml><a-b>1</a-b></xml>',
      'XML_MALFORMED',
      /^element name <a-b> is not an APIv2 field name$/,
    ],
    [
      '__proto__',
      '<xml><__proto__>1</__proto__></xml>',
      'XML_FORBIDDEN_KEY',
      /^XML uses a reserved element name$/,
    ],
  ])('refuses %s', (_what, body, code, message) => {
    const e = thrown(() => parseXml(body)) as XmlError;
    expect(e).toBeInstanceOf(XmlError);
    expect(e.code).toBe(code);
    expect(e.message).toMatch(message);
  });

  it('keeps the parser’s reason as the cause', () => {
    expect(
      (thrown(() => parseXml('<xml><a><b><c><d><e>1</e></d></c></b></a></xml>')) as Error).cause,
    ).toBeDefined();
    expect((thrown(() => parseXml('<xml><constructor>1</constructor></xml>')) as Error).cause).toBeDefined();
    const bad = thrown(() => parseXml(Uint8Array.from([0x3c, 0x78, 0xff, 0x3e]))) as XmlError;
    expect(bad).toMatchObject({ code: 'XML_ENCODING', message: 'XML body is not valid UTF-8' });
    expect(bad.cause).toBeInstanceOf(TypeError);
  });

  it('measures the size limit in UTF-8 bytes, inclusive, for text and for bytes', () => {
    const body = '<xml><a>中</a></xml>'; // 中 is 3 bytes
    const bytes = Buffer.byteLength(body);
    expect(parseXml(body, { maxBytes: bytes })).toEqual({ a: '中' });
    expect(parseXml(Buffer.from(body), { maxBytes: bytes })).toEqual({ a: '中' });
    for (const input of [body, Buffer.from(body)]) {
      const e = thrown(() => parseXml(input, { maxBytes: bytes - 1 })) as XmlError;
      expect(e).toMatchObject({
        code: 'XML_TOO_LARGE',
        message: `XML body is larger than ${bytes - 1} bytes`,
      });
    }
  });

  it('ignores attributes, the declaration and processing instructions', () => {
    expect(parseXml('<?xml version="1.0"?><?php echo 1?><xml><a b="1">x</a></xml>')).toEqual({ a: 'x' });
  });

  it('reads an empty root, or one holding only whitespace, as no fields', () => {
    expect(parseXml('<xml></xml>')).toEqual({});
    expect(parseXml('<xml> \n </xml>')).toEqual({});
    expect(parseXml('<root></root>', { root: 'root' })).toEqual({});
  });
});

describe('toXml', () => {
  it('leaves out undefined and null, and writes every other value', () => {
    expect(toXml({ a: undefined, b: null, c: 0, d: '' })).toBe('<xml><c>0</c><d><![CDATA[]]></d></xml>');
  });

  it('writes only digit strings bare', () => {
    expect(toXml({ a: '12', b: '1.5', c: '-1' })).toBe(
      '<xml><a>12</a><b><![CDATA[1.5]]></b><c><![CDATA[-1]]></c></xml>',
    );
  });

  it.each(['__proto__', 'constructor', 'prototype', 'a-b', '1a', ''])('refuses the field name %j', (name) => {
    const e = thrown(() => toXml(Object.fromEntries([[name, 'x']]))) as XmlError;
    expect(e).toMatchObject({ code: 'XML_FORBIDDEN_KEY', message: `invalid field name: ${name}` });
  });

  it('refuses a character XML cannot carry, naming the field', () => {
    expect(thrown(() => toXml({ body: 'a\u0001b' }))).toMatchObject({
      code: 'XML_MALFORMED',
      message: 'field body contains a character XML cannot carry',
    });
  });
});

describe('replyXml', () => {
  it('says FAIL or OK when no message is given', () => {
    expect(replyXml('FAIL')).toBe(
      '<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[FAIL]]></return_msg></xml>',
    );
    expect(replyXml('SUCCESS')).toBe(
      '<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>',
    );
  });

  it('says the message it is given, with SUCCESS too', () => {
    expect(replyXml('SUCCESS', '成功')).toBe(
      '<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[成功]]></return_msg></xml>',
    );
    expect(replyXml('FAIL', '签名失败')).toBe(
      '<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[签名失败]]></return_msg></xml>',
    );
  });
});

describe('sign and verify', () => {
  it('knows exactly the two sign types of APIv2', () => {
    expect(SIGN_TYPES).toEqual(['MD5', 'HMAC-SHA256']);
  });

  it('refuses a missing key and an unknown sign type with what to do', () => {
    for (const key of ['', undefined, 42]) {
      expect(thrown(() => sign({ a: '1' }, key as never, 'MD5'))).toMatchObject({
        code: 'WXPAY_KEY_MISSING',
        message: 'the APIv2 key is empty: set WXPAY_API_KEY (32 characters)',
      });
    }
    const e = thrown(() => sign({ a: '1' }, KEY, 'SHA1' as never));
    expect(e).toBeInstanceOf(CryptoError);
    expect(e).toMatchObject({ code: 'WXPAY_SIGN_TYPE', message: 'unsupported sign type: SHA1' });
  });

  it('withSign adds sign_type only when the caller did not set one', () => {
    const signed = withSign({ a: '1', sign_type: 'MD5' }, KEY, 'HMAC-SHA256');
    expect(signed.sign_type).toBe('MD5');
    expect(verify(signed, KEY, 'HMAC-SHA256')).toBe(true);
  });

  it('canonicalString orders by code unit, upper case and digits before lower case', () => {
    expect(canonicalString({ b: '1', a: '2', B: '3', _: '4', '9': '5' })).toBe('9=5&B=3&_=4&a=2&b=1');
  });
});

describe('decryptReqInfo refusals', () => {
  const valid = encryptReqInfo({ out_refund_no: 'R1' }, KEY);

  it.each([
    ['not a string', undefined, 'REQ_INFO_INVALID', 'req_info is missing or not base64'],
    ['not base64', 'not base64!', 'REQ_INFO_INVALID', 'req_info is missing or not base64'],
    ['base64 after junk', `!!${valid}`, 'REQ_INFO_INVALID', 'req_info is missing or not base64'],
    ['base64 before junk', `${valid}!!`, 'REQ_INFO_INVALID', 'req_info is missing or not base64'],
    [
      'empty once decoded',
      'A=',
      'REQ_INFO_INVALID',
      'req_info length is not a multiple of the AES block size',
    ],
    [
      'not whole blocks',
      'QUFBQQ==',
      'REQ_INFO_INVALID',
      'req_info length is not a multiple of the AES block size',
    ],
  ])('refuses a req_info that is %s', (_what, input, code, message) => {
    expect(thrown(() => decryptReqInfo(input as never, KEY))).toMatchObject({ code, message });
  });

  it('accepts the surrounding whitespace an XML body may leave', () => {
    expect(decryptReqInfo(`\n  ${valid}\n`, KEY)).toEqual({ out_refund_no: 'R1' });
  });

  it('refuses an empty key before trying, in both directions', () => {
    for (const fn of [() => decryptReqInfo(valid, ''), () => encryptReqInfo({ a: '1' }, '')]) {
      expect(thrown(fn)).toMatchObject({
        code: 'WXPAY_KEY_MISSING',
        message: 'the APIv2 key is empty: set WXPAY_API_KEY',
      });
    }
  });

  it('reports a wrong key as REQ_INFO_DECRYPT with the cipher’s reason as the cause', () => {
    const reasons = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const e = thrown(() => decryptReqInfo(valid, `wrongkey${i}`)) as CryptoError;
      expect(e.code).toBe('REQ_INFO_DECRYPT');
      expect(e.cause).toBeDefined();
      reasons.add(e.message);
    }
    // Almost every wrong key fails the padding; about one in 256 gets past it with garbage.
    expect(
      [...reasons].every((m) =>
        /^req_info (does not decrypt with this API key|decrypted to something that is not <root> XML)$/.test(
          m,
        ),
      ),
    ).toBe(true);
  });

  it('reports a key whose padding does not check out as "does not decrypt", with the cipher’s error', () => {
    const e = thrown(() => decryptReqInfo(valid, 'wrongkey0')) as CryptoError;
    expect(e).toMatchObject({
      code: 'REQ_INFO_DECRYPT',
      message: 'req_info does not decrypt with this API key',
    });
    expect(e.cause).toMatchObject({ message: expect.stringMatching(/bad decrypt/) });
  });

  it('reports padding that decrypts to something other than <root> XML as REQ_INFO_DECRYPT', () => {
    const c = createCipheriv('aes-256-ecb', Buffer.from(createHash('md5').update(KEY).digest('hex')), null);
    const b64 = Buffer.concat([c.update('hello, not xml'), c.final()]).toString('base64');
    const e = thrown(() => decryptReqInfo(b64, KEY)) as CryptoError;
    expect(e).toMatchObject({
      code: 'REQ_INFO_DECRYPT',
      message: 'req_info decrypted to something that is not <root> XML',
    });
    expect(e.cause).toBeInstanceOf(XmlError);
  });
});

describe('bills', () => {
  const HEADER = BILL_ALL_COLUMNS.join(',');
  const SUMMARY = BILL_SUMMARY_COLUMNS.join(',');
  const row = (last = '') =>
    `\`2014-11-10 16:33:45,\`wx2421b1c4370ec43b,\`10000100,\`0,\`1000,\`1001690740201411100005734289,\`1415640626,\`o1,\`JSAPI,\`SUCCESS,\`OTHERS,\`CNY,\`0.01,\`0.00,\`0,\`0,\`0,\`0,\`,\`,\`苹果,\`,\`0.00000,\`0.60%,\`0.01,\`0.00,\`${last}`;
  const SUM = '`1,`0.01,`0.00,`0.00,`0.00000,`0.01,`0.00';
  const bill = (...lines: string[]) => lines.join('\r\n');
  const refusal = (csv: string) => thrown(() => parseBill(csv)) as BillError;

  it('reads LF line ends, a byte-order mark and trailing spaces', () => {
    const b = parseBill(`\uFEFF${[HEADER, `${row()}  \t`, SUMMARY, `${SUM} `].join('\n')}\n`);
    expect(b.rows).toHaveLength(1);
    expect(b.rows[0]!['费率备注']).toBe('');
    expect(b.summary['申请退款总金额']).toBe('0.00');
  });

  it('keeps a byte-order mark that is not at the very start', () => {
    const b = parseBill(bill(HEADER, row().replace('苹果', '苹\uFEFF果'), SUMMARY, SUM));
    expect(b.rows[0]!['商品名称']).toBe('苹\uFEFF果');
  });

  it('reads a day without trades, and rows whose last field is not empty', () => {
    expect(parseBill(bill(HEADER, SUMMARY, '`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00')).rows).toEqual([]);
    expect(parseBill(bill(HEADER, row('x'), row('y'), SUMMARY, SUM)).rows.map((r) => r['费率备注'])).toEqual([
      'x',
      'y',
    ]);
  });

  it.each([
    ['two lines', bill(HEADER, SUMMARY), 'bill must end with one summary header and one summary row'],
    ['a header alone', bill(HEADER), 'bill must end with one summary header and one summary row'],
    ['nothing', '', 'bill needs a header, a summary header and a summary row'],
    ['another header', bill('a,b', '`1,`2', SUMMARY, SUM), 'bill does not start with the 交易时间 header'],
    [
      'rows without a summary',
      bill(HEADER, row(), row()),
      'bill must end with one summary header and one summary row',
    ],
    [
      'a line after the summary',
      bill(HEADER, row(), SUMMARY, SUM, 'x'),
      'bill must end with one summary header and one summary row',
    ],
    [
      'another summary header',
      bill(HEADER, row(), 'a,b', SUM),
      'bill line 3 is neither a row nor the summary',
    ],
    [
      'a summary that is not back-ticked',
      bill(HEADER, row(), SUMMARY, SUM.replace('`1', '1')),
      'bill line 4 is not a back-tick row',
    ],
    [
      'a short row',
      bill(HEADER, row(), row().replace(',`0.60%', ''), SUMMARY, SUM),
      'bill line 3 has 26 fields, its header has 27',
    ],
    ['a short summary', bill(HEADER, SUMMARY, '`0,`0.00'), 'bill line 3 has 2 fields, its header has 7'],
  ])('refuses %s, saying where', (_what, csv, message) => {
    expect(refusal(csv)).toMatchObject({ code: 'BILL_MALFORMED', message });
  });

  it('writes an absent field as empty, behind the BOM WeChat puts first', () => {
    const csv = formatBill({ columns: ['a', 'b'], rows: [{ a: '1' }], summaryColumns: ['n'], summary: {} });
    expect(csv).toBe('\uFEFFa,b\r\n`1,`\r\nn\r\n`\r\n');
  });
});
