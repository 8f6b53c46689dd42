/**
 * Template values against WeChat's value rules (subscribeMessage.send, 订阅消息参数值内容限制):
 * whatever the shop's data holds (emoji, long product names, line breaks, half a surrogate
 * pair), each value is cut and formatted to fit its field, so WeChat never answers 47003.
 * Checked twice: by this module's own rule check and by the emulator's independent one.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ACCEPTS,
  cleanText,
  cut,
  KEYWORD_TYPES,
  type KeywordType,
  keywordType,
  satisfiesRule,
  shapeValue,
  type Value,
} from '../../../cloudfunctions/shared/notices/rules';
import { acceptsValue } from '../../../sandbox/tcb/subscribe';

/** 2025-05-01 10:00 in Beijing is 02:00 UTC. */
const T = Date.UTC(2025, 4, 1, 2, 0);

const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({
    unit: fc.constantFrom('买', '多', '了', '😀', '👨‍👩‍👧‍👦', '🇨🇳', '\n', '\t', ' ', 'a', '1', '\ud83d'),
    maxLength: 40,
  }),
);

const anyValue: fc.Arbitrary<Value> = fc.oneof(
  anyText.map((text) => ({ kind: 'text' as const, text })),
  fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/).map((text) => ({ kind: 'id' as const, text })),
  fc
    .constantFrom('待审核', '退款完成', '已拒绝', '退款关闭', '')
    .map((text) => ({ kind: 'label' as const, text })),
  fc.integer({ min: 0, max: 9_999_999_999 }).map((fen) => ({ kind: 'fen' as const, fen })),
  fc.nat({ max: 1_000_000 }).map((n) => ({ kind: 'count' as const, n })),
  fc.integer({ min: 0, max: 4_102_444_800_000 }).map((ms) => ({ kind: 'time' as const, ms })),
  fc.integer({ min: 0, max: 4_102_444_800_000 }).map((ms) => ({ kind: 'date' as const, ms })),
);

const SHAPED_TYPES = KEYWORD_TYPES.filter((t) => ACCEPTS[t].length > 0);

describe('every shaped value fits its field', () => {
  it.each(SHAPED_TYPES)('%s: any value it accepts comes out non-empty and within the rule', (type) => {
    fc.assert(
      fc.property(
        anyValue.filter((v) => ACCEPTS[type].includes(v.kind)),
        (v) => {
          const out = shapeValue(type, v);
          expect(satisfiesRule(type, out), `${type} ${JSON.stringify(v)} → ${JSON.stringify(out)}`).toBe(
            true,
          );
          expect(acceptsValue(`${type}1`, out), `emulator: ${type} ${JSON.stringify(out)}`).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('never throws, whatever the pair', () => {
    fc.assert(
      fc.property(fc.constantFrom(...KEYWORD_TYPES), anyValue, (type, v) => {
        expect(shapeValue(type, v)).not.toBe('');
      }),
      { numRuns: 500 },
    );
  });
});

describe('thing: 20 characters', () => {
  const thing = (text: string) => shapeValue('thing', { kind: 'text', text });

  it('keeps a short value as it is', () => {
    expect(thing('买多了')).toBe('买多了');
    expect(thing('12345678901234567890')).toBe('12345678901234567890');
  });

  it('cuts a long product name to 19 characters and an ellipsis', () => {
    const out = thing('西湖龙井 Longjing tea 50g 明前特级礼盒装');
    expect(out).toBe('西湖龙井 Longjing tea 5…');
    expect(out.length).toBe(20);
  });

  it('never splits an emoji: a surrogate pair, a flag or a family stays whole or goes', () => {
    for (const [text, expected] of [
      ['一二三四五六七八九十一二三四五六七八😀😀', '一二三四五六七八九十一二三四五六七八…'],
      ['一二三四五六七八九十一二三四五六七🇨🇳好', '一二三四五六七八九十一二三四五六七…'],
      ['一二三四五六七八九十一二三四五👨‍👩‍👧‍👦', '一二三四五六七八九十一二三四五…'],
      ['退款😀原因', '退款😀原因'],
    ] as const) {
      const out = thing(text);
      expect(out).toBe(expected);
      expect(out).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
    }
  });

  it('counts a character outside the BMP as two, so either way WeChat counts it the value fits', () => {
    const out = thing('😀'.repeat(15));
    expect(out).toBe(`${'😀'.repeat(9)}…`);
    expect(out.length).toBe(19);
    expect(Array.from(out).length).toBe(10);
  });

  it('turns line breaks and tabs into single spaces and drops half a surrogate pair', () => {
    expect(thing('第一行\r\n第二行\t\t完')).toBe('第一行 第二行 完');
    expect(thing('坏\ud83d字')).toBe('坏字');
    expect(thing('   ')).toBe('无');
  });

  it('reads money, counts and times as text', () => {
    expect(shapeValue('thing', { kind: 'fen', fen: 1250 })).toBe('12.50元');
    expect(shapeValue('thing', { kind: 'time', ms: T })).toBe('2025-05-01 10:00');
  });
});

describe('amount, number, character_string', () => {
  it('writes fen as yuan with two decimals and 元', () => {
    expect(shapeValue('amount', { kind: 'fen', fen: 1250 })).toBe('12.50元');
    expect(shapeValue('amount', { kind: 'fen', fen: 1 })).toBe('0.01元');
    expect(shapeValue('amount', { kind: 'fen', fen: 0 })).toBe('0.00元');
    expect(shapeValue('amount', { kind: 'fen', fen: 12_345_678_90 })).toBe('12345678.90元');
    expect(shapeValue('number', { kind: 'fen', fen: 1990 })).toBe('19.90');
  });

  it('keeps an order number whole up to 32 characters and cuts it beyond', () => {
    expect(shapeValue('character_string', { kind: 'id', text: 'R20250501100000abcDEF123456' })).toBe(
      'R20250501100000abcDEF123456',
    );
    expect(shapeValue('character_string', { kind: 'id', text: 'x'.repeat(40) })).toBe('x'.repeat(32));
  });
});

describe('time and date: Beijing time, whatever the server’s zone', () => {
  it('formats a time as 2025年5月1日 10:00 and a date as 2025年5月1日', () => {
    expect(shapeValue('time', { kind: 'time', ms: T })).toBe('2025年5月1日 10:00');
    expect(shapeValue('date', { kind: 'date', ms: T })).toBe('2025年5月1日');
    // 23:30 UTC is already the next day in Beijing.
    expect(shapeValue('date', { kind: 'date', ms: Date.UTC(2025, 11, 31, 23, 30) })).toBe('2026年1月1日');
  });
});

describe('phrase: 5 Chinese characters or fewer', () => {
  it('keeps a state label, and strips anything that is not Chinese', () => {
    expect(shapeValue('phrase', { kind: 'label', text: '退款完成' })).toBe('退款完成');
    expect(shapeValue('phrase', { kind: 'label', text: '退款OK完成了吗啊' })).toBe('退款完成了');
    expect(shapeValue('phrase', { kind: 'label', text: 'OK' })).toBe('无');
  });
});

describe('rule checks refuse what WeChat refuses', () => {
  it.each<[KeywordType, string]>([
    ['thing', '这是一段超过二十个字的退款原因文字描述内容'],
    ['thing', '两行\n文字'],
    ['thing', ''],
    ['phrase', '退款完成了吗'],
    ['phrase', 'OK'],
    ['amount', '十二元'],
    ['character_string', '中文单号'],
    ['character_string', 'x'.repeat(33)],
    ['time', '明天'],
    ['number', '12a'],
  ])('%s refuses %j', (type, value) => {
    expect(satisfiesRule(type, value)).toBe(false);
    expect(acceptsValue(`${type}1`, value)).toBe(false);
  });
});

describe('keywordType', () => {
  it('reads the type from the keyword name', () => {
    expect(keywordType('thing3')).toBe('thing');
    expect(keywordType('character_string12')).toBe('character_string');
    expect(keywordType('phone_number1')).toBe('phone_number');
    expect(keywordType('amount')).toBeUndefined();
    expect(keywordType('keyword1')).toBeUndefined();
  });
});

describe('cut and cleanText', () => {
  it('cuts without an ellipsis when asked', () => {
    expect(cut('abcdef', 3)).toBe('abc');
    expect(cut('abc', 3)).toBe('abc');
  });
  it('removes C1 controls and line separators too', () => {
    expect(cleanText('a\u0085b\u2028c\u200bd')).toBe('a b c\u200bd');
  });
});
