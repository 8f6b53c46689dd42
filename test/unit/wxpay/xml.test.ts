import { describe, expect, it } from 'vitest';
import { XmlError } from '../../../cloudfunctions/shared/errors';
import { parseXml, replyXml, toXml, XML_MAX_BYTES } from '../../../cloudfunctions/shared/wxpay';
import { isFlatWellFormed } from '../../../cloudfunctions/shared/wxpay/xml';

// Not a speed target (the bench measures that): a ceiling no expanding parser could meet,
// so a regression that parses before refusing fails here even on a loaded machine.
const EXPANSION_CEILING_MS = 1000;

function refused(body: string | Uint8Array, code: string, maxBytes?: number) {
  const t0 = performance.now();
  let err: unknown;
  try {
    parseXml(body, maxBytes === undefined ? {} : { maxBytes });
  } catch (e) {
    err = e;
  }
  const ms = performance.now() - t0;
  expect(err).toBeInstanceOf(XmlError);
  expect((err as XmlError).code).toBe(code);
  return ms;
}

describe('parseXml', () => {
  it('reads a WeChat response with CDATA and bare values as strings', () => {
    const xml = `<xml>
<return_code><![CDATA[SUCCESS]]></return_code>
<return_msg><![CDATA[OK]]></return_msg>
<appid><![CDATA[wx2421b1c4370ec43b]]></appid>
<total_fee>100</total_fee>
<prepay_id><![CDATA[wx201411101639507cbf6ffd8b0779950874]]></prepay_id>
<empty></empty><selfclosed/>
</xml>`;
    expect(parseXml(xml)).toEqual({
      return_code: 'SUCCESS',
      return_msg: 'OK',
      appid: 'wx2421b1c4370ec43b',
      total_fee: '100',
      prepay_id: 'wx201411101639507cbf6ffd8b0779950874',
      empty: '',
      selfclosed: '',
    });
  });
  it('keeps leading zeros, spaces and markup-like text exactly', () => {
    const v = parseXml('<xml><a>007</a><b><![CDATA[ x <y> & z ]]></b><c>a &amp; b &#20013;</c></xml>');
    expect(v).toEqual({ a: '007', b: ' x <y> & z ', c: 'a & b 中' });
  });
  it('accepts an XML declaration and raw UTF-8 bytes', () => {
    expect(
      parseXml(Buffer.from('<?xml version="1.0" encoding="UTF-8"?><xml><body>商品</body></xml>')),
    ).toEqual({ body: '商品' });
  });
  it('returns an object without a prototype chain to pollute', () => {
    const v = parseXml('<xml><a>1</a></xml>');
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('refuses an external entity (XXE)', () => {
    refused(
      '<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><a>&xxe;</a></xml>',
      'XML_DOCTYPE',
    );
  });
  it('refuses billion laughs in milliseconds without expanding it', () => {
    const lol = `<!DOCTYPE lolz [<!ENTITY lol "lol">${Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i || ''};`.repeat(10)}">`).join('')}]><xml><a>&lol9;</a></xml>`;
    expect(refused(lol, 'XML_DOCTYPE')).toBeLessThan(EXPANSION_CEILING_MS);
  });
  it('refuses a 10 MB body before parsing it', () => {
    const huge = `<xml><a>${'x'.repeat(10 * 1024 * 1024)}</a></xml>`;
    expect(refused(huge, 'XML_TOO_LARGE')).toBeLessThan(EXPANSION_CEILING_MS);
    expect(refused(Buffer.from(huge), 'XML_TOO_LARGE')).toBeLessThan(EXPANSION_CEILING_MS);
  });
  it('refuses 10k-deep nesting, by size by default and by depth under a raised limit', () => {
    const deep = `<xml>${'<a>'.repeat(10_000)}${'</a>'.repeat(10_000)}</xml>`;
    expect(refused(deep, 'XML_TOO_LARGE')).toBeLessThan(EXPANSION_CEILING_MS);
    expect(refused(deep, 'XML_NESTED', 1024 * 1024)).toBeLessThan(EXPANSION_CEILING_MS);
  });
  it('refuses a single nested element', () => {
    refused('<xml><a><b>1</b></a></xml>', 'XML_NESTED');
  });
  it('refuses invalid UTF-8', () => {
    refused(
      Buffer.from([...Buffer.from('<xml><a>'), 0xc3, 0x28, ...Buffer.from('</a></xml>')]),
      'XML_ENCODING',
    );
  });
  it('refuses duplicate tags, which could smuggle a second amount past the signature', () => {
    refused('<xml><total_fee>1</total_fee><total_fee>100</total_fee></xml>', 'XML_DUPLICATE');
  });
  it('refuses prototype keys', () => {
    refused('<xml><__proto__>1</__proto__></xml>', 'XML_FORBIDDEN_KEY');
    refused('<xml><constructor>1</constructor></xml>', 'XML_FORBIDDEN_KEY');
  });
  it('refuses other roots, two roots, text at the root, empty and broken bodies', () => {
    refused('<root><a>1</a></root>', 'XML_ROOT');
    refused('<xml><a>1</a></xml><xml><a>2</a></xml>', 'XML_MALFORMED');
    refused('<xml>text<a>1</a></xml>', 'XML_MALFORMED');
    refused('', 'XML_EMPTY');
    refused('<xml><a>1</xml>', 'XML_MALFORMED');
    refused('{"return_code":"SUCCESS"}', 'XML_MALFORMED');
  });
  it('has a limit that fits real messages', () => {
    expect(XML_MAX_BYTES).toBeGreaterThanOrEqual(16 * 1024);
  });
});

describe('parseXml on flat documents (read without building a tree)', () => {
  function refusal(body: string): XmlError {
    try {
      parseXml(body);
    } catch (e) {
      return e as XmlError;
    }
    throw new Error('accepted');
  }

  it('joins a value given in pieces: text, CDATA and references, in order', () => {
    const xml = '<xml><a>x<![CDATA[<y>]]>&amp;z&#20013;<![CDATA[]]>!</a><b>1</b></xml>';
    expect(isFlatWellFormed(xml)).toBe(true);
    expect({ ...parseXml(xml) }).toEqual({ a: 'x<y>&z中!', b: '1' });
  });

  it('keeps empty fields as empty strings and ignores whitespace between fields', () => {
    const xml = '<xml>\n  <a></a>\n  <b><![CDATA[]]></b>\r\n\t<c> 1 </c>\n</xml>\n';
    expect(isFlatWellFormed(xml)).toBe(true);
    expect({ ...parseXml(xml) }).toEqual({ a: '', b: '', c: ' 1 ' });
  });

  it("reads a field that has its root element's name", () => {
    expect({ ...parseXml('<xml><xml>1</xml><a>2</a></xml>') }).toEqual({ xml: '1', a: '2' });
    expect({ ...parseXml('<root><root>r</root></root>', { root: 'root' }) }).toEqual({ root: 'r' });
  });

  it('names the first field, in order of appearance, that is repeated', () => {
    const e = refusal('<xml><b>1</b><a>1</a><a>2</a><b>2</b></xml>');
    expect([e.code, e.message]).toEqual(['XML_DUPLICATE', 'element <b> appears more than once']);
    // The same document where it is not flat gets the same answer from the tree.
    const tree = refusal('<xml><!-- c --><b>1</b><a>1</a><a>2</a><b>2</b></xml>');
    expect([tree.code, tree.message]).toEqual([e.code, e.message]);
  });

  it('refuses a reserved name anywhere, even after a repeated field', () => {
    expect(refusal('<xml><a>1</a><a>2</a><constructor>x</constructor></xml>').code).toBe('XML_FORBIDDEN_KEY');
  });

  it('keeps values that look like numbers as their exact text, flat or not', () => {
    const fields = '<a>0100</a><b>1e3</b><c>-0.50</c><d>0x1F</d>';
    const expected = { a: '0100', b: '1e3', c: '-0.50', d: '0x1F' };
    expect({ ...parseXml(`<xml>${fields}</xml>`) }).toEqual(expected);
    expect(isFlatWellFormed(`<xml><!-- c -->${fields}</xml>`)).toBe(false);
    expect({ ...parseXml(`<xml><!-- c -->${fields}</xml>`) }).toEqual(expected);
  });

  it('reads the next document normally after a refused one', () => {
    refusal('<xml><prototype>1</prototype></xml>');
    refusal('<xml><a>1</a><a>1</a></xml>');
    // Not flat (a comment), so read from the parser's tree, which a leftover reader would empty.
    const xml = '<xml><!-- c --><a>1</a><b>&lt;2</b></xml>';
    expect(isFlatWellFormed(xml)).toBe(false);
    expect({ ...parseXml(xml) }).toEqual({ a: '1', b: '<2' });
  });
});

describe('toXml', () => {
  it('round-trips arbitrary text, including CDATA terminators and Chinese', () => {
    const params = { body: '测试商品 <b> & "q"', attach: 'a]]>b', total_fee: '100', n: '0012' };
    expect(parseXml(toXml(params))).toEqual(params);
  });
  it('writes numbers bare and text in CDATA', () => {
    expect(toXml({ total_fee: 1, body: 'x' })).toBe(
      '<xml><total_fee>1</total_fee><body><![CDATA[x]]></body></xml>',
    );
  });
  it('refuses field names that are not APIv2 names', () => {
    expect(() => toXml({ 'a b': '1' })).toThrow(XmlError);
    expect(() => toXml({ __proto__x: '1', ['constructor']: '1' })).toThrow(XmlError);
  });
});

describe('replyXml', () => {
  it('is the exact success reply WeChat expects', () => {
    expect(replyXml('SUCCESS')).toBe(
      '<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>',
    );
    expect(parseXml(replyXml('FAIL', 'bad sign'))).toEqual({ return_code: 'FAIL', return_msg: 'bad sign' });
  });
});

describe('toXml with carriage returns', () => {
  it('keeps a CR exactly, so a signed value still verifies after any XML parser', () => {
    const params = { refund_desc: 'line one\r\nline two\rend', attach: 'a]]>\rb' };
    const xml = toXml(params);
    expect(xml).not.toContain('\r');
    expect(parseXml(xml)).toEqual(params);
  });
});

describe('isFlatWellFormed', () => {
  it('never takes a root that is not an element name, whose pattern would match other text', () => {
    expect(isFlatWellFormed('<a><k>1</k></a>', 'a')).toBe(true);
    expect(isFlatWellFormed('<axb><k>1</k></axb>', 'a.b')).toBe(false);
    expect(isFlatWellFormed('<a.b><k>1</k></a.b>', 'a.b')).toBe(false);
  });

  // The notify path skips the validator for these, so each must really be recognised.
  it.each([
    ['CDATA', '<xml><a><![CDATA[x]y]]></a></xml>'],
    ['CDATA holding "]]" and ">"', '<xml><a><![CDATA[]]]></a><b><![CDATA[a]>b]]></b></xml>'],
    ['XML’s entities and character references', '<xml><a>&amp;&lt;&#13;&#x4E2D;</a></xml>'],
    ['a declaration and whitespace between fields', '<?xml version="1.0"?>\r\n<xml>\n <a>1</a>\n</xml>\n'],
    ['an empty field and an empty root', '<xml><a></a></xml>'],
  ])('takes a flat document with %s', (_what, text) => {
    expect(isFlatWellFormed(text)).toBe(true);
  });

  it.each([
    ['a comment', '<xml><!-- c --><a>1</a></xml>'],
    ['an attribute', '<xml><a b="1">1</a></xml>'],
    ['a nested element', '<xml><a><b>1</b></a></xml>'],
    ['a self-closing element', '<xml><a/></xml>'],
    ['a mismatched close', '<xml><a>1</b></xml>'],
    ['an unknown entity', '<xml><a>&nbsp;</a></xml>'],
    ['a bare ampersand', '<xml><a>a&b</a></xml>'],
    ['an unclosed CDATA', '<xml><a><![CDATA[x</a></xml>'],
    ['another root', '<root><a>1</a></root>'],
    ['a byte-order mark', '\uFEFF<xml><a>1</a></xml>'],
  ])('sends a document with %s to the validator', (_what, text) => {
    expect(isFlatWellFormed(text)).toBe(false);
  });
});
