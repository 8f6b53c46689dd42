/**
 * parseXml takes a faster path through fast-xml-parser: when the document is flat and
 * well-formed by construction, no validation pass and no tree (its fields are read through the
 * parser's hooks); otherwise the validator and the parser's ordered tree instead of its object
 * form. These properties hold it to the slower path it replaced, kept here as the reference:
 * every document, valid or mangled, gets the same fields or the same refusal code.
 */
import fc from 'fast-check';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { XmlError } from '../../cloudfunctions/shared/errors';
import { isFlatWellFormed, parseXml, toXml } from '../../cloudfunctions/shared/wxpay/xml';
import { scaled, summary } from './support';

const RUNS = scaled(1500, 20000);

const KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const referenceParser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: false,
  processEntities: true,
  htmlEntities: { amp: '&', apos: "'", gt: '>', lt: '<', quot: '"' } as unknown as boolean,
  ignoreDeclaration: true,
  ignorePiTags: true,
  maxNestedTags: 4,
});

/** The previous parseXml after decoding: XMLValidator on every document, then the object tree. */
function referenceParse(text: string, root = 'xml'): Record<string, string> {
  if (text.trim() === '') throw new XmlError('XML_EMPTY', '');
  if (/<!DOCTYPE|<!ENTITY|<!ELEMENT|<!ATTLIST/i.test(text)) throw new XmlError('XML_DOCTYPE', '');
  if (text.includes('\u0000')) throw new XmlError('XML_MALFORMED', '');
  if (XMLValidator.validate(text) !== true) throw new XmlError('XML_MALFORMED', '');
  let doc: unknown;
  try {
    doc = referenceParser.parse(text);
  } catch (cause) {
    const msg = cause instanceof Error ? cause.message : String(cause);
    if (/nested/i.test(msg)) throw new XmlError('XML_NESTED', '');
    if (/__proto__|constructor|prototype|reserved/i.test(msg)) throw new XmlError('XML_FORBIDDEN_KEY', '');
    throw new XmlError('XML_MALFORMED', '');
  }
  if (typeof doc !== 'object' || doc === null) throw new XmlError('XML_MALFORMED', '');
  const roots = Object.keys(doc);
  if (roots.length !== 1 || roots[0] !== root) throw new XmlError('XML_ROOT', '');
  const inner = (doc as Record<string, unknown>)[root];
  if (Array.isArray(inner)) throw new XmlError('XML_ROOT', '');
  const out: Record<string, string> = Object.create(null);
  if (typeof inner === 'string') {
    if (inner.trim() !== '') throw new XmlError('XML_MALFORMED', '');
    return out;
  }
  if (typeof inner !== 'object' || inner === null) return out;
  for (const [k, v] of Object.entries(inner)) {
    if (k === '#text') {
      if (typeof v === 'string' && v.trim() !== '') throw new XmlError('XML_MALFORMED', '');
      continue;
    }
    if (FORBIDDEN_KEYS.has(k)) throw new XmlError('XML_FORBIDDEN_KEY', '');
    if (!KEY_RE.test(k)) throw new XmlError('XML_MALFORMED', '');
    if (Array.isArray(v)) throw new XmlError('XML_DUPLICATE', '');
    if (typeof v === 'object' && v !== null) throw new XmlError('XML_NESTED', '');
    out[k] = typeof v === 'string' ? v : String(v ?? '');
  }
  return { ...out };
}

type Outcome = { fields: Record<string, string> } | { refused: string };
function outcome(parse: () => Record<string, string>): Outcome {
  try {
    return { fields: { ...parse() } };
  } catch (e) {
    if (!(e instanceof XmlError)) throw e;
    return { refused: e.code };
  }
}

const fieldName = fc.stringMatching(/^[a-z_][a-z0-9_]{0,10}$/).filter((k) => !FORBIDDEN_KEYS.has(k));
const value = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.stringMatching(/^\d{1,10}$/),
  fc
    .array(fc.constantFrom(']]>', '<', '>', '&', '&amp;', '\r\n', '\n', ' ', 'a', '支付', '"', ']]', ']'), {
      maxLength: 6,
    })
    .map((a) => a.join('')),
);
// biome-ignore lint/suspicious/noControlCharactersInRegex: characters toXml refuses.
const xmlSafe = value.filter((s) => !/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/.test(s));
const params = fc.dictionary(fieldName, xmlSafe, { maxKeys: 8 });
const root = fc.constantFrom('xml', 'root');

/** A well-formed flat document in one of the shapes WeChat and our simulator send. */
const document = fc
  .record({
    p: params,
    root,
    decl: fc.constantFrom('', '<?xml version="1.0" encoding="UTF-8"?>', '<?xml version="1.0"?>\n'),
    sep: fc.constantFrom('', '\n', '\r\n', '  '),
  })
  .map(({ p, root: r, decl, sep }) => {
    const inner = toXml(p, r).slice(r.length + 2, -(r.length + 3));
    return { root: r, text: `${decl}<${r}>${sep}${inner.replace(/></g, `>${sep}<`)}${sep}</${r}>` };
  });

const SNIPPETS = [
  '<',
  '>',
  '/',
  '&',
  ']',
  '![CDATA[',
  ']]>',
  '<a>',
  '</a>',
  '<a/>',
  '<b>x</b>',
  '&amp;',
  '&#x41;',
  '&#0;',
  '&#1114112;',
  '&bogus;',
  '&#xD800;',
  '<!-- c -->',
  '<?pi x?>',
  '<xml>',
  '</xml>',
  '<root>',
  ' a="1"',
  '\uFEFF',
  '\u00A0',
  '\t',
  'x',
  '<__proto__>1</__proto__>',
  '<!DOCTYPE x>',
  '<toString>1</toString>',
];

/** The document with a few edits: snippets inserted, characters deleted or replaced. */
const mangled = fc
  .record({
    doc: document,
    edits: fc.array(
      fc.record({
        at: fc.nat(),
        kind: fc.constantFrom('insert', 'delete', 'replace', 'duplicate'),
        s: fc.constantFrom(...SNIPPETS),
      }),
      { minLength: 1, maxLength: 3 },
    ),
  })
  .map(({ doc, edits }) => {
    let t = doc.text;
    for (const e of edits) {
      const i = e.at % (t.length + 1);
      const field = /<([a-z_][a-z0-9_]*)>[^<]*<\/\1>/.exec(t);
      if (e.kind === 'duplicate' && field) t = t.slice(0, field.index) + field[0] + t.slice(field.index);
      else if (e.kind === 'insert') t = t.slice(0, i) + e.s + t.slice(i);
      else if (e.kind === 'delete') t = t.slice(0, i) + t.slice(i + 1 + (e.at % 3));
      else t = t.slice(0, i) + e.s + t.slice(i + e.s.length);
    }
    return { root: doc.root, text: t };
  });

describe('parseXml against the parser it replaced', () => {
  it('gives the same fields as validate-then-parse for every well-formed flat document', () => {
    let fast = 0;
    fc.assert(
      fc.property(document, ({ root: r, text }) => {
        if (isFlatWellFormed(text, r)) fast++;
        expect(outcome(() => parseXml(text, { root: r }))).toEqual(outcome(() => referenceParse(text, r)));
      }),
      { numRuns: RUNS },
    );
    // The generator makes WeChat's own shapes; nearly all of them must take the fast path.
    expect(fast).toBeGreaterThan(RUNS * 0.9);
    summary('xml-fast-path', { documents: RUNS, 'validated by shape alone': fast, mismatches: 0 });
  });

  it('gives the same fields or the same refusal code for mangled documents', () => {
    const refusals = new Map<string, number>();
    let acceptedByShape = 0;
    fc.assert(
      fc.property(mangled, ({ root: r, text }) => {
        const ours = outcome(() => parseXml(text, { root: r }));
        expect(ours).toEqual(outcome(() => referenceParse(text, r)));
        if ('refused' in ours) refusals.set(ours.refused, (refusals.get(ours.refused) ?? 0) + 1);
        if (isFlatWellFormed(text, r)) acceptedByShape++;
      }),
      { numRuns: RUNS * 2 },
    );
    summary('xml-mangled', {
      documents: RUNS * 2,
      'still well-formed by shape': acceptedByShape,
      ...Object.fromEntries([...refusals].map(([code, n]) => [code, n])),
      mismatches: 0,
    });
  });

  it('skips validation only for documents XMLValidator accepts', () => {
    let skipped = 0;
    fc.assert(
      fc.property(fc.oneof(document, mangled), ({ root: r, text }) => {
        if (!isFlatWellFormed(text, r)) return;
        skipped++;
        expect(XMLValidator.validate(text)).toBe(true);
      }),
      { numRuns: RUNS * 2 },
    );
    summary('xml-shape-implies-valid', { skipped, 'validator disagreed': 0 });
  });

  it('decides the shape in linear time on hostile near-misses', () => {
    const near = [
      `<xml><a>${'x'.repeat(60_000)}</xml>`,
      `<xml>${'<a>x</a>'.repeat(8_000)}<b>`,
      `<xml><a><![CDATA[${']'.repeat(60_000)}</a></xml>`,
      `<xml><a>${'&amp;'.repeat(12_000)}&</a></xml>`,
      `<xml>${'<a>'.repeat(15_000)}</xml>`,
    ];
    for (const text of near) {
      const t0 = performance.now();
      expect(isFlatWellFormed(text)).toBe(false);
      // A ceiling no backtracking blow-up could meet, loose enough for a loaded machine.
      expect(performance.now() - t0).toBeLessThan(500);
    }
  });
});
