/**
 * Which days the bill check's timer takes up (timerPlan, timerWindow): pure functions of the
 * time and the days' statuses. The runs themselves are in
 * test/reliability/domain-billcheck-runs.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { BillCheckStatus } from '../../../cloudfunctions/shared/contract';
import { timerPlan, timerWindow } from '../../../cloudfunctions/shared/domain/billcheck';
import { dayStartMs } from '../../../cloudfunctions/shared/domain/billdates';

const HOUR = 3600_000;
const at = (date: string, hour: number) => dayStartMs(date)! + hour * HOUR;

describe('the timer’s days', () => {
  it('none before 10:30 Beijing time, when WeChat may still be generating the bills', () => {
    expect(timerPlan(at('20260310', 10.5) - 1, new Map())).toEqual({
      skipped: 'before 10:30 Beijing time',
      dates: [],
    });
  });

  it('the week ending yesterday: yesterday first, then every day not DONE, oldest first', () => {
    const now = at('20260310', 10.5);
    expect(timerWindow(now)).toEqual([
      '20260303',
      '20260304',
      '20260305',
      '20260306',
      '20260307',
      '20260308',
      '20260309',
    ]);
    expect(timerPlan(now, new Map())).toEqual({
      dates: ['20260309', '20260303', '20260304', '20260305', '20260306', '20260307', '20260308'],
    });
    const statuses = new Map<string, BillCheckStatus>([
      ['20260303', 'DONE'],
      ['20260304', 'NOT_READY'],
      ['20260305', 'DONE'],
      ['20260306', 'INCOMPLETE'],
      ['20260307', 'DONE'],
      ['20260308', 'FAILED'],
      ['20260302', 'FAILED'],
    ]);
    expect(timerPlan(now, statuses).dates).toEqual(['20260309', '20260304', '20260306', '20260308']);
    statuses.set('20260309', 'DONE');
    expect(timerPlan(at('20260310', 23.99), statuses).dates).toEqual(['20260304', '20260306', '20260308']);
  });
});
