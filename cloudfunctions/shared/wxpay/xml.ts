import { type ReadonlyMatcher, XMLParser, XMLValidator } from 'fast-xml-parser';
import { XmlError } from '../errors';
import type { WxParams, WxParamsIn } from './types';

/** WeChat's notify and response bodies are a few KB; 64 KB leaves room and refuses floods. */
export const XML_MAX_BYTES = 64 * 1024;

const KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export interface ParseXmlOptions {
  /** Root element name: `xml` for APIv2 messages, `root` inside a decrypted req_info. */
  root?: string;
  maxBytes?: number;
}

// preserveOrder gives fast-xml-parser's own tree (no second "prettify" pass building an
// object per element) and jPath:false skips building a path string per tag.
const PARSER_OPTIONS = {
  // Attributes cost time and parseXml never reads them (nodeName skips their ':@' entry).
  // Stryker disable next-line BooleanLiteral: equivalent, see above.
  ignoreAttributes: true,
  parseTagValue: false,
  // Signatures cover values byte for byte, so whitespace inside a value is kept.
  trimValues: false,
  processEntities: true,
  // XML's five named entities plus numeric references (&#13;, &#20013;). An object here
  // turns numeric references on without HTML's named table, which tripled parse time.
  htmlEntities: { amp: '&', apos: "'", gt: '>', lt: '<', quot: '"' } as unknown as boolean,
  // fast-xml-parser drops the declaration with the processing instructions anyway.
  // Stryker disable next-line BooleanLiteral: equivalent, see above.
  ignoreDeclaration: true,
  ignorePiTags: true,
  maxNestedTags: 4,
  preserveOrder: true,
  // Stryker disable next-line BooleanLiteral: the path strings cost time only (equivalent).
  jPath: false,
};

/**
 * For a document with no `&` there is no reference to decode, so entity processing is off
 * and fast-xml-parser gets this do-nothing decoder (its documented `entityDecoder` option)
 * instead of building a real one for every parse. Most notifies carry their values in CDATA
 * and contain no `&` at all.
 */
// fast-xml-parser 5.12 calls neither addInputEntities (DTDs are refused before parsing) nor
// decode (entity processing is off) on it: their throws guard a parser upgrade, so their
// mutants cannot be reached today.
// Stryker disable all
const NO_ENTITIES = {
  setExternalEntities() {},
  addInputEntities() {
    throw new Error('entity declarations are refused');
  },
  reset() {},
  decode(text: string): string {
    if (text.includes('&')) throw new Error('an entity reference reached the plain parser');
    return text;
  },
  setXmlVersion() {},
};
// Stryker restore all

/** One element or text node of fast-xml-parser's preserveOrder tree. */
type OrderedNode = Record<string, unknown>;

/**
 * The fields of a shaped document (below), collected while fast-xml-parser reads it. Its tree
 * is not built for them: building one node object per element was a quarter of a notify's
 * parse time. parse() is synchronous, so one module-level slot is enough.
 */
interface Collecting {
  out: WxParams;
  /** Names seen more than once, refused after the whole document is read. */
  repeated: Set<string>;
}
let collecting: Collecting | undefined;

/** Depth of the element being read; with `jPath: false` the hooks get the path matcher. */
function depth(path: string | ReadonlyMatcher): number {
  return (path as ReadonlyMatcher).getDepth();
}

// fast-xml-parser's documented hooks. A field is an element at depth 2 (inside the root);
// text at depth 1 is the whitespace between fields, which the shape allows and nothing keeps.
const FIELD_DEPTH = 2;
const HOOKS = {
  /** Called as each element opens, with the name fast-xml-parser checked (reserved names throw). */
  updateTag(name: string, path: string | ReadonlyMatcher): string | false {
    const c = collecting;
    if (c === undefined) return name;
    if (depth(path) === FIELD_DEPTH) {
      // fast-xml-parser throws for these names itself before calling this hook: a guard for
      // a parser upgrade, unreachable today.
      // Stryker disable all: see above.
      if (FORBIDDEN_KEYS.has(name)) {
        throw new XmlError('XML_FORBIDDEN_KEY', `element <${name}> is not allowed`);
      }
      // Stryker restore all
      if (Object.hasOwn(c.out, name)) c.repeated.add(name);
      else c.out[name] = '';
    }
    // false: the element is not added to a tree nobody reads.
    // Stryker disable next-line BooleanLiteral: true only builds that tree (time, not fields).
    return false;
  },
  /** Called with each non-empty piece of text or CDATA, entity references decoded. */
  tagValueProcessor(name: string, value: string, path: string | ReadonlyMatcher): string {
    const c = collecting;
    if (c !== undefined && depth(path) === FIELD_DEPTH) c.out[name] += value;
    return value;
  },
};

// Built on first use: functions that never read XML (listProducts, whoami) never pay for them.
let parser: XMLParser | undefined;
let plainParser: XMLParser | undefined;

// Which parser reads a document is a matter of speed only: every entity reference starts with
// '&', so without one the entity-processing parser gives the same fields, and the plain
// parser's options below change nothing but time (their mutants are equivalent).
function parserFor(text: string): XMLParser {
  // Stryker disable next-line ConditionalExpression,StringLiteral: see above.
  if (text.includes('&')) {
    parser ??= new XMLParser({ ...PARSER_OPTIONS, ...HOOKS });
    return parser;
  }
  plainParser ??= new XMLParser({
    ...PARSER_OPTIONS,
    ...HOOKS,
    // Stryker disable next-line BooleanLiteral: see above.
    processEntities: false,
    // Stryker disable next-line BooleanLiteral: see above.
    htmlEntities: false,
    entityDecoder: NO_ENTITIES,
  });
  return plainParser;
}

/**
 * Reads a shaped document's fields through the hooks. Its structure is known already, so
 * what is left to refuse is a name used twice; as in `refusal`, the first such name in order
 * of first appearance is the one reported, once fast-xml-parser has read the whole document
 * (a reserved name anywhere in it makes the parser throw instead).
 */
function collectFields(p: XMLParser, text: string): WxParams {
  const c: Collecting = { out: {}, repeated: new Set() };
  collecting = c;
  try {
    p.parse(text);
  } finally {
    collecting = undefined;
  }
  if (c.repeated.size > 0) {
    const k = Object.keys(c.out).find((name) => c.repeated.has(name));
    throw new XmlError('XML_DUPLICATE', `element <${k}> appears more than once`);
  }
  return c.out;
}

const flatShapes = new Map<string, RegExp>();

/**
 * True for a flat APIv2 document that is well-formed by construction: an optional XML
 * declaration, then `<root>`, then only `<name>…</name>` fields holding text, CDATA and XML's
 * own entity references, each closed by its own name. XMLValidator accepts every such
 * document, so parseXml skips its separate pass for them; anything else (comments,
 * attributes, self-closing or nested elements, a BOM, odd whitespace) is validated in full
 * as before. Each alternative starts with a different character and a value advances one
 * character per step, so matching stays linear on hostile input.
 */
export function isFlatWellFormed(text: string, root = 'xml'): boolean {
  if (!KEY_RE.test(root)) return false;
  let re = flatShapes.get(root);
  // Stryker disable next-line ConditionalExpression: the cache saves time only (equivalent).
  if (!re) {
    const ws = '[ \\t\\r\\n]*';
    const cdata = '<!\\[CDATA\\[(?:[^\\]]|\\](?!\\]>))*\\]\\]>';
    const entity = '&(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});';
    re = new RegExp(
      `^(?:<\\?xml(?:[ \\t\\r\\n][^<>?]*)?\\?>)?${ws}<${root}>` +
        `(?:${ws}<([A-Za-z_][A-Za-z0-9_]*)>(?:${cdata}|[^<&]|${entity})*</\\1>)*${ws}</${root}>${ws}$`,
    );
    flatShapes.set(root, re);
  }
  return re.test(text);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decode(body: string | Uint8Array, maxBytes: number): string {
  if (typeof body === 'string') {
    // Stryker disable next-line StringLiteral: utf8 is byteLength's default (equivalent).
    if (Buffer.byteLength(body, 'utf8') > maxBytes) {
      throw new XmlError('XML_TOO_LARGE', `XML body is larger than ${maxBytes} bytes`);
    }
    return body;
  }
  if (body.byteLength > maxBytes)
    throw new XmlError('XML_TOO_LARGE', `XML body is larger than ${maxBytes} bytes`);
  try {
    return utf8.decode(body);
  } catch (cause) {
    throw new XmlError('XML_ENCODING', 'XML body is not valid UTF-8', { cause });
  }
}

/** The one key of a preserveOrder node (its element name, or `#text`). */
function nodeName(node: OrderedNode): string {
  // With ignoreAttributes there is no ':@' entry; the check keeps one out if that changes.
  // Stryker disable next-line ConditionalExpression,StringLiteral: equivalent today, see above.
  for (const k in node) if (k !== ':@') return k;
  // Stryker disable next-line StringLiteral: the parser builds no node without a name.
  return '';
}

/**
 * Parses a flat APIv2 document (`<xml><k>v</k>…</xml>`) into string values. Everything else
 * is refused before any expansion happens: DTDs and entity declarations (XXE, billion
 * laughs), other roots, nested or repeated elements, prototype keys, oversized bodies and
 * invalid UTF-8. Pass raw bytes when you have them, so the encoding is checked too.
 */
export function parseXml(body: string | Uint8Array, options: ParseXmlOptions = {}): WxParams {
  const root = options.root ?? 'xml';
  const text = decode(body, options.maxBytes ?? XML_MAX_BYTES);
  if (text.trim() === '') throw new XmlError('XML_EMPTY', 'XML body is empty');
  if (/<!DOCTYPE|<!ENTITY|<!ELEMENT|<!ATTLIST/i.test(text)) {
    throw new XmlError('XML_DOCTYPE', 'XML with a DOCTYPE or entity declaration is refused');
  }
  if (text.includes('\u0000')) throw new XmlError('XML_MALFORMED', 'XML contains a NUL character');
  // A shaped document's element names are APIv2 names already, and its structure is known.
  const shaped = isFlatWellFormed(text, root);
  // XMLValidator accepts every shaped document, so validating it too changes only the time.
  // Stryker disable next-line ConditionalExpression: equivalent, see above.
  if (!shaped) {
    // The parser alone accepts unclosed and mismatched tags; the validator does not.
    const valid = XMLValidator.validate(text);
    if (valid !== true) {
      throw new XmlError(
        'XML_MALFORMED',
        `XML is not well-formed: ${valid.err.msg} (line ${valid.err.line})`,
      );
    }
  }
  let doc: unknown;
  try {
    if (shaped) return collectFields(parserFor(text), text);
    doc = parserFor(text).parse(text);
  } catch (cause) {
    if (cause instanceof XmlError) throw cause;
    const msg = cause instanceof Error ? cause.message : String(cause);
    if (/nested/i.test(msg)) throw new XmlError('XML_NESTED', 'XML elements must not be nested', { cause });
    // Past the validator, fast-xml-parser throws only for depth and reserved names, so the
    // fallback below is defence against a future parser (its mutants are equivalent today).
    // Stryker disable next-line ConditionalExpression: no other parser error reaches here.
    if (/__proto__|constructor|prototype|reserved/i.test(msg)) {
      throw new XmlError('XML_FORBIDDEN_KEY', 'XML uses a reserved element name', { cause });
    }
    // Stryker disable next-line all: unreachable past the validator (see above).
    throw new XmlError('XML_MALFORMED', `XML could not be parsed: ${msg}`, { cause });
  }
  // Anything beside the one root (a second root, text such as a BOM before a declaration)
  // is refused.
  // preserveOrder always gives an array, and the validator refuses a second root or a
  // document without one, so neither fallback below can be reached today.
  // Stryker disable next-line ConditionalExpression,ArrayDeclaration: see above.
  const top = Array.isArray(doc) ? (doc as OrderedNode[]) : [];
  if (top.length !== 1 || nodeName(top[0]!) !== root) {
    const names = [...new Set(top.map(nodeName))];
    // Stryker disable next-line all: see above.
    if (names.length === 1 && names[0] === root)
      // Stryker disable next-line all: see above.
      throw new XmlError('XML_ROOT', `XML must have exactly one <${root}> element`);
    throw new XmlError(
      'XML_ROOT',
      `XML root must be <${root}>, got ${names.map((r) => (r === '#text' ? 'text' : `<${r}>`)).join(', ')}`,
    );
  }
  const fields = top[0]![root];
  const out: WxParams = {};
  // preserveOrder gives the root an array of children, an empty one too.
  // Stryker disable next-line all: unreachable today, see above.
  if (!Array.isArray(fields)) return out;
  for (const node of fields as OrderedNode[]) {
    const k = nodeName(node);
    const v = node[k];
    if (k === '#text') {
      if (String(v).trim() !== '') throw refusal(fields as OrderedNode[], root);
    } else {
      // Own keys only: "toString" or "valueOf" are fields like any other, not repeats.
      const value = isField(k) && !Object.hasOwn(out, k) ? fieldValue(v) : undefined;
      if (value === undefined) throw refusal(fields as OrderedNode[], root);
      out[k] = value;
    }
  }
  return out;
}

/** A name APIv2 could send: not a prototype key, letters, digits and underscores. */
function isField(name: string): boolean {
  return !FORBIDDEN_KEYS.has(name) && KEY_RE.test(name);
}

/** An element's value: its text and CDATA pieces in order; undefined if it holds an element. */
function fieldValue(children: unknown): string | undefined {
  // preserveOrder gives every element an array of children, empty ones too.
  // Stryker disable next-line all: see above.
  if (!Array.isArray(children)) return '';
  let value = '';
  for (const child of children as OrderedNode[]) {
    const text = child['#text'];
    if (text === undefined) return undefined;
    value += String(text);
  }
  return value;
}

/**
 * The refusal for a document with at least one bad field. A document with several faults
 * always gets the same code: names are checked in order of first appearance (reserved, not an
 * APIv2 name, repeated, nested), then text directly inside the root.
 */
function refusal(fields: OrderedNode[], root: string): XmlError {
  const byName = new Map<string, OrderedNode[]>();
  for (const node of fields) {
    const k = nodeName(node);
    byName.set(k, [...(byName.get(k) ?? []), node]);
  }
  for (const [k, nodes] of byName) {
    if (k === '#text') continue;
    // fast-xml-parser refuses these names itself (XML uses a reserved element name) before
    // any field reaches here, so this line guards a parser upgrade only.
    // Stryker disable next-line all: unreachable today, see above.
    if (FORBIDDEN_KEYS.has(k)) return new XmlError('XML_FORBIDDEN_KEY', `element <${k}> is not allowed`);
    if (!KEY_RE.test(k))
      return new XmlError('XML_MALFORMED', `element name <${k}> is not an APIv2 field name`);
    if (nodes.length > 1) return new XmlError('XML_DUPLICATE', `element <${k}> appears more than once`);
    if (fieldValue(nodes[0]![k]) === undefined) {
      return new XmlError('XML_NESTED', `element <${k}> must not contain elements`);
    }
  }
  return new XmlError('XML_MALFORMED', `text directly inside <${root}> is not allowed`);
}

function cdata(value: string): string {
  // "]]>" cannot appear inside CDATA; split it across two sections.
  return `<![CDATA[${value.split(']]>').join(']]]]><![CDATA[>')}]]>`;
}

/**
 * XML parsers turn a raw CR (or CRLF) into LF, even inside CDATA, so a signed value with a CR
 * would arrive different and fail 签名错误. A character reference survives: write such
 * values as escaped text with CR as &#13;.
 */
function escapedText(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#13;');
}

/** Serialises flat params under `root` (`xml`, or `root` inside a req_info): numbers bare, text in CDATA. */
export function toXml(params: WxParamsIn, root = 'xml'): string {
  const parts: string[] = [`<${root}>`];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null) continue;
    if (!KEY_RE.test(k) || FORBIDDEN_KEYS.has(k))
      throw new XmlError('XML_FORBIDDEN_KEY', `invalid field name: ${k}`);
    const s = String(v);
    // Characters XML 1.0 cannot carry at all.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point.
    if (/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/.test(s)) {
      throw new XmlError('XML_MALFORMED', `field ${k} contains a character XML cannot carry`);
    }
    parts.push(`<${k}>${/^\d+$/.test(s) ? s : s.includes('\r') ? escapedText(s) : cdata(s)}</${k}>`);
  }
  parts.push(`</${root}>`);
  return parts.join('');
}
