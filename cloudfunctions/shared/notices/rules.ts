/**
 * WeChat's value rules for subscribe message data (订阅消息参数值内容限制, in the
 * subscribeMessage.send documentation:
 * https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/mp-message-management/subscribe-message/sendMessage.html).
 * A value that breaks its rule makes WeChat answer 47003 and the notice is lost, so every
 * value is shaped here to fit, and shaping never throws: a notice is a side effect of a
 * stored change and must never fail it.
 *
 * The keyword's name says its type: `thing3` is a thing, `character_string1` a
 * character_string. The rules this module applies, per type:
 *
 * | type             | WeChat's rule                                              |
 * |------------------|------------------------------------------------------------|
 * | thing            | 20 characters or fewer: Chinese, letters, digits, symbols |
 * | number           | 32 digits or fewer, may have a decimal point               |
 * | letter           | 32 letters or fewer                                        |
 * | symbol           | 5 symbols or fewer                                         |
 * | character_string | 32 or fewer digits, letters or symbols                     |
 * | time             | 24-hour time, with the date allowed: 2019年10月1日 15:01   |
 * | date             | a date, with the time allowed                              |
 * | amount           | one currency sign or 元, 10 digits or fewer, decimals allowed |
 * | phone_number     | 17 or fewer digits and symbols                             |
 * | name             | 10 Chinese characters, or 20 letters and symbols           |
 * | phrase           | 5 Chinese characters or fewer, nothing else                |
 *
 * No value may be empty or contain a line break or other control character.
 */

export const KEYWORD_TYPES = [
  'thing',
  'number',
  'letter',
  'symbol',
  'character_string',
  'time',
  'date',
  'amount',
  'phone_number',
  'name',
  'phrase',
  'car_number',
  'enum',
] as const;
export type KeywordType = (typeof KEYWORD_TYPES)[number];

/** `thing12` → thing; `character_string1` → character_string; anything else → undefined. */
export function keywordType(keyword: string): KeywordType | undefined {
  const m = /^([a-z]+(?:_[a-z]+)?)(\d{1,3})$/.exec(keyword);
  if (!m) return undefined;
  return (KEYWORD_TYPES as readonly string[]).includes(m[1]!) ? (m[1] as KeywordType) : undefined;
}

/** What a variable carries before it is shaped to a keyword. */
export type Value =
  | { kind: 'text'; text: string }
  /** An order or refund number: ASCII letters, digits, `_` and `-`. */
  | { kind: 'id'; text: string }
  /** A state label such as 退款完成: a few Chinese characters. */
  | { kind: 'label'; text: string }
  | { kind: 'fen'; fen: number }
  | { kind: 'count'; n: number }
  | { kind: 'time'; ms: number }
  /** A calendar day; `ms` is any instant in it (Beijing time). */
  | { kind: 'date'; ms: number };
export type ValueKind = Value['kind'];

/**
 * Which variables a keyword type can show. Checked when configuration is loaded, so a
 * template whose fields cannot hold what we send is refused at cold start, not at 47003.
 * car_number and enum take values this shop never has.
 */
export const ACCEPTS: Record<KeywordType, readonly ValueKind[]> = {
  thing: ['text', 'id', 'label', 'fen', 'count', 'time', 'date'],
  number: ['fen', 'count'],
  letter: [],
  symbol: [],
  character_string: ['id', 'fen', 'count', 'time', 'date'],
  time: ['time'],
  date: ['time', 'date'],
  amount: ['fen'],
  phone_number: ['text'],
  name: ['text', 'label'],
  phrase: ['label'],
  car_number: [],
  enum: [],
};

// ---- measuring and cutting ----

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
// C0 and C1 controls, DEL, the Unicode line and paragraph separators, BOM and noncharacters.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]+/g;

/** One line of well-formed text: no controls or line breaks, single spaces, trimmed. */
export function cleanText(s: string): string {
  return s.replace(LONE_SURROGATE, '').replace(CONTROL, ' ').replace(/\s+/g, ' ').trim();
}

/**
 * The length WeChat measures against. It does not say how it counts a character outside the
 * Basic Multilingual Plane (an emoji, a rare 汉字): counting those as two (UTF-16 units) keeps
 * a value valid whether WeChat counts them as one or two.
 */
export function measure(s: string): number {
  return s.length;
}

type Segmenter = { segment(s: string): Iterable<{ segment: string }> };
const SegmenterCtor = (Intl as unknown as { Segmenter?: new (l?: string, o?: object) => Segmenter })
  .Segmenter;
const graphemeSegmenter = SegmenterCtor ? new SegmenterCtor('zh', { granularity: 'grapheme' }) : undefined;

/** User-perceived characters (an emoji with skin tone or ZWJ stays whole); code points without Intl.Segmenter. */
function graphemes(s: string): string[] {
  if (!graphemeSegmenter) return Array.from(s);
  return Array.from(graphemeSegmenter.segment(s), (g) => g.segment);
}

/**
 * At most `max` units (see measure). A cut never splits a surrogate pair or a grapheme (a
 * flag, a family emoji), and marks itself with `…` when `ellipsis` is set.
 */
export function cut(s: string, max: number, ellipsis = false): string {
  if (measure(s) <= max) return s;
  const budget = ellipsis ? max - 1 : max;
  let out = '';
  for (const g of graphemes(s)) {
    if (measure(out) + measure(g) > budget) break;
    out += g;
  }
  out = out.trimEnd();
  return ellipsis ? `${out}…` : out;
}

// ---- formatting values ----

const BEIJING_OFFSET_MS = 8 * 3600_000;

function beijingParts(ms: number) {
  const d = new Date((Number.isFinite(ms) ? ms : 0) + BEIJING_OFFSET_MS);
  const p2 = (n: number) => String(n).padStart(2, '0');
  return {
    y: d.getUTCFullYear(),
    m: d.getUTCMonth() + 1,
    d: d.getUTCDate(),
    hm: `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}`,
    iso: `${d.getUTCFullYear()}-${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())}`,
  };
}

/** fen → `12.50` (integer arithmetic: 0.1 + 0.2 is not 0.3). */
export function yuan(fen: number): string {
  const f = Number.isSafeInteger(fen) ? Math.abs(fen) : 0;
  return `${Math.floor(f / 100)}.${String(f % 100).padStart(2, '0')}`;
}

/** How a value reads as free text (for thing and name). */
function asText(v: Value): string {
  switch (v.kind) {
    case 'text':
    case 'id':
    case 'label':
      return cleanText(v.text);
    case 'fen':
      return `${yuan(v.fen)}元`;
    case 'count':
      return String(Number.isSafeInteger(v.n) ? v.n : 0);
    case 'time': {
      const t = beijingParts(v.ms);
      return `${t.iso} ${t.hm}`;
    }
    case 'date':
      return beijingParts(v.ms).iso;
  }
}

const HAN = /\p{Script=Han}/u;
const NOT_HAN = /[^\p{Script=Han}]/gu;
/** Printable ASCII other than letters, digits and space: what "符号" can safely mean. */
const ASCII_SYMBOLS = /[!-/:-@[-`{-~]/;

function keep(s: string, allowed: RegExp): string {
  return Array.from(s)
    .filter((c) => allowed.test(c))
    .join('');
}

/** The fallback when nothing of a value survives its rule: WeChat refuses an empty value. */
export const EMPTY_VALUE: Record<KeywordType, string> = {
  thing: '无',
  number: '0',
  letter: 'N',
  symbol: '-',
  character_string: '-',
  time: '00:00',
  date: '1970年1月1日',
  amount: '0.00元',
  phone_number: '-',
  name: '无',
  phrase: '无',
  car_number: '-',
  enum: '-',
};

/**
 * Shapes `v` to the rule of `type`. Pure and total: any input gives a value WeChat accepts
 * for that type (for the pairs ACCEPTS allows; other pairs still give a non-empty string).
 */
export function shapeValue(type: KeywordType, v: Value): string {
  const out = shape(type, v);
  return out === '' ? EMPTY_VALUE[type] : out;
}

function shape(type: KeywordType, v: Value): string {
  switch (type) {
    case 'thing':
      return cut(asText(v), 20, true);
    case 'number':
      if (v.kind === 'fen') return yuan(v.fen);
      if (v.kind === 'count') return String(Number.isSafeInteger(v.n) ? Math.abs(v.n) : 0);
      return cut(keep(asText(v), /[0-9.]/).replace(/\.(?=.*\.)/g, ''), 32);
    case 'letter':
      return cut(keep(asText(v), /[A-Za-z]/), 32);
    case 'symbol':
      return cut(keep(asText(v), ASCII_SYMBOLS), 5);
    case 'character_string': {
      if (v.kind === 'fen') return yuan(v.fen);
      const text = v.kind === 'time' ? asText(v).replace(' ', '_') : asText(v);
      return cut(keep(text, /[!-~]/), 32);
    }
    case 'time':
    case 'date': {
      if (v.kind !== 'time' && v.kind !== 'date') return '';
      const t = beijingParts(v.ms);
      const day = `${t.y}年${t.m}月${t.d}日`;
      // A time field needs the hour; a date field may carry it.
      if (v.kind === 'date' && type === 'date') return day;
      return `${day} ${t.hm}`;
    }
    case 'amount':
      return v.kind === 'fen' ? `${yuan(v.fen)}元` : '';
    case 'phone_number':
      return cut(keep(asText(v), /[0-9+\-()#*]/), 17);
    case 'name': {
      const text = asText(v);
      // Mixed Chinese and letters count as a Chinese name: 10 at most. No digits either way.
      if (HAN.test(text)) return cut(keep(text, /[\p{Script=Han}A-Za-z·]/u), 10);
      return cut(
        keep(text, /[A-Za-z !-/:-@[-`{-~]/)
          .replace(/\s+/g, ' ')
          .trim(),
        20,
      );
    }
    case 'phrase':
      return cut(asText(v).replace(NOT_HAN, ''), 5);
    case 'car_number':
    case 'enum':
      return cut(keep(asText(v), /[0-9A-Za-z]/), 8);
  }
}

// ---- checking (tests, and the emulator's own check of what it is sent) ----

/** Whether `value` satisfies WeChat's rule for `type`, with this module's conservative length. */
export function satisfiesRule(type: KeywordType, value: string): boolean {
  if (value === '' || value !== cleanText(value)) return false;
  switch (type) {
    case 'thing':
      return measure(value) <= 20;
    case 'number':
      return /^\d+(\.\d+)?$/.test(value) && value.replace('.', '').length <= 32;
    case 'letter':
      return /^[A-Za-z]{1,32}$/.test(value);
    case 'symbol':
      return measure(value) <= 5 && Array.from(value).every((c) => ASCII_SYMBOLS.test(c));
    case 'character_string':
      return /^[!-~]{1,32}$/.test(value);
    case 'time':
      return /^(\d{4}年\d{1,2}月\d{1,2}日 )?\d{2}:\d{2}(:\d{2})?$/.test(value);
    case 'date':
      return /^\d{4}年\d{1,2}月\d{1,2}日( \d{2}:\d{2}(:\d{2})?)?$/.test(value);
    case 'amount':
      return /^[¥￥$]?\d{1,10}(\.\d{1,2})?元?$/.test(value) && /\d/.test(value);
    case 'phone_number':
      return /^[0-9+\-()#*]{1,17}$/.test(value);
    case 'name':
      return HAN.test(value)
        ? measure(value) <= 10 && !/\d/.test(value)
        : /^[A-Za-z !-/:-@[-`{-~]{1,20}$/.test(value);
    case 'phrase':
      return measure(value) <= 5 && Array.from(value).every((c) => HAN.test(c));
    case 'car_number':
    case 'enum':
      return measure(value) <= 8;
  }
}
