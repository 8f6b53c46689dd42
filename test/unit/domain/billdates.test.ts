import { describe, expect, it } from 'vitest';
import { billDateOf, dayStartMs, parseBillDate } from '../../../cloudfunctions/shared/domain/billdates';

// 2026-11-30 00:00 in Beijing is 2026-11-29 16:00 UTC.
const NOV30 = Date.UTC(2026, 10, 29, 16, 0, 0);

describe('bill dates (Beijing days, yyyyMMdd)', () => {
  it('a day starts at 00:00 Beijing time', () => {
    expect(dayStartMs('20261130')).toBe(NOV30);
    expect(billDateOf(NOV30)).toBe('20261130');
    expect(billDateOf(NOV30 - 1)).toBe('20261129');
  });

  it('anything but eight digits of a real day is no day, never an error', () => {
    for (const raw of [
      '',
      'abc',
      '2026113',
      '202611300',
      'x20261130',
      '20261130x',
      '20261131',
      '20260230',
      '2026-11-30',
    ]) {
      expect(dayStartMs(raw)).toBeUndefined();
    }
  });

  it('today is a valid date from its first millisecond; tomorrow is refused until it starts', () => {
    expect(parseBillDate('20261130', NOV30)).toBe('20261130');
    expect(() => parseBillDate('20261130', NOV30 - 1)).toThrow(
      'date must not be in the future (Beijing time)',
    );
    expect(() => parseBillDate('2026-11-30', NOV30)).toThrow('date must be a day as yyyyMMdd (Beijing time)');
  });
});
