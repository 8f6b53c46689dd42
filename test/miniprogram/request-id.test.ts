import { describe, expect, it } from 'vitest';
import { newRequestId, REQUEST_ID_PATTERN, submissionFor } from '../../miniprogram/utils/request-id';

describe('newRequestId', () => {
  it('makes keys the server accepts, different each time even within one millisecond', () => {
    const ids = Array.from({ length: 10_000 }, () => newRequestId(Math.random, 1_746_064_800_000));
    for (const id of ids.slice(0, 100)) expect(id).toMatch(REQUEST_ID_PATTERN);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('stays within the pattern at the edges of its inputs', () => {
    expect(newRequestId(() => 0, 0)).toMatch(REQUEST_ID_PATTERN);
    expect(newRequestId(() => 0.999999999, Number.MAX_SAFE_INTEGER)).toMatch(REQUEST_ID_PATTERN);
  });
});

describe('submissionFor', () => {
  let n = 0;
  const make = () => `request-${++n}`;

  it('keeps the key when the same values are sent again (a retry)', () => {
    const first = submissionFor(null, ['o1', 100, '坏了', undefined], make);
    expect(submissionFor(first, ['o1', 100, '坏了', undefined], make)).toBe(first);
  });

  it('makes a new key when any value changed (a new application)', () => {
    const first = submissionFor(null, ['o1', 100, '坏了', undefined], make);
    const next = submissionFor(first, ['o1', 101, '坏了', undefined], make);
    expect(next.requestId).not.toBe(first.requestId);
    expect(submissionFor(next, ['o1', 101, '坏了', '138'], make).requestId).not.toBe(next.requestId);
  });
});
