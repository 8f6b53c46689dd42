import { XMLParser, XMLValidator } from 'fast-xml-parser';
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

const parser = new XMLParser({
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
});

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
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    throw new XmlError('XML_MALFORMED', `XML is not well-formed: ${valid.err.msg} (line ${valid.err.line})`);
  }
  let doc: unknown;
  try {
    doc = parser.parse(text);
  } catch (cause) {
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
  // The validator has already refused a document with no root or with two; these checks
  // keep the shape guaranteed if that ever changes (their mutants are equivalent today).
  // Stryker disable next-line all: the parser always returns an object.
  if (typeof doc !== 'object' || doc === null) throw new XmlError('XML_MALFORMED', 'XML has no root element');
  const roots = Object.keys(doc);
  // Stryker disable next-line ConditionalExpression: two roots never pass the validator.
  if (roots.length !== 1 || roots[0] !== root) {
    throw new XmlError(
      'XML_ROOT',
      // Stryker disable next-line LogicalOperator,ConditionalExpression,StringLiteral: there is always exactly one root here.
      `XML root must be <${root}>, got ${roots.map((r) => `<${r}>`).join(', ') || 'none'}`,
    );
  }
  const inner = (doc as Record<string, unknown>)[root];
  // Stryker disable next-line all: two roots never pass the validator.
  if (Array.isArray(inner)) throw new XmlError('XML_ROOT', `XML must have exactly one <${root}> element`);
  const out: WxParams = Object.create(null);
  if (typeof inner === 'string') {
    if (inner.trim() !== '')
      throw new XmlError('XML_MALFORMED', `text directly inside <${root}> is not allowed`);
    return out;
  }
  // Stryker disable next-line all: past a string, the root's content is always an object.
  if (typeof inner !== 'object' || inner === null) return out;
  for (const [k, v] of Object.entries(inner)) {
    if (k === '#text') {
      // Stryker disable next-line ConditionalExpression: text is always a string (parseTagValue: false).
      if (typeof v === 'string' && v.trim() !== '') {
        throw new XmlError('XML_MALFORMED', `text directly inside <${root}> is not allowed`);
      }
      continue;
    }
    // Stryker disable next-line all: the parser refuses these names itself; kept should it stop.
    if (FORBIDDEN_KEYS.has(k)) throw new XmlError('XML_FORBIDDEN_KEY', `element <${k}> is not allowed`);
    if (!KEY_RE.test(k))
      throw new XmlError('XML_MALFORMED', `element name <${k}> is not an APIv2 field name`);
    if (Array.isArray(v)) throw new XmlError('XML_DUPLICATE', `element <${k}> appears more than once`);
    // Stryker disable next-line ConditionalExpression: the parser never yields null.
    if (typeof v === 'object' && v !== null)
      throw new XmlError('XML_NESTED', `element <${k}> must not contain elements`);
    // Values are strings (parseTagValue: false); an empty element is ''.
    out[k] = String(v);
  }
  return { ...out };
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
