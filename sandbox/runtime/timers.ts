/**
 * CloudBase timer triggers: a 7-field cron `sec min hour day month weekday year` evaluated in
 * UTC+8, day and weekday combined with OR (reference §4). croner reads this exact form in its
 * "7-part" mode, so the config string is used as written.
 */
import { Cron } from 'croner';

export const TIMER_TIMEZONE = 'Asia/Shanghai';

export interface TimerTrigger {
  name: string;
  type: 'timer';
  config: string;
}

export interface TimerEvent {
  Type: 'Timer';
  TriggerName: string;
  /** UTC, second precision, like SCF's "2019-02-21T11:49:00Z". */
  Time: string;
  Message: string;
}

/** Parses a CloudBase timer config; throws with the rule it broke. */
export function parseTimerCron(config: string, onTick?: () => void): Cron {
  const fields = config.trim().split(/\s+/);
  if (fields.length !== 7) {
    throw new Error(`timer "${config}" must have 7 fields: sec min hour day month weekday year`);
  }
  const options = { timezone: TIMER_TIMEZONE, mode: '7-part' as const, domAndDow: false, unref: true };
  return onTick
    ? new Cron(fields.join(' '), options, onTick)
    : new Cron(fields.join(' '), { ...options, paused: true });
}

/** Next fire times after `from` (for tests and the console). */
export function nextTimerRuns(config: string, count: number, from: Date = new Date()): Date[] {
  const cron = parseTimerCron(config);
  try {
    return cron.nextRuns(count, from);
  } finally {
    cron.stop();
  }
}

export function timerEvent(trigger: string, at: Date): TimerEvent {
  return {
    Type: 'Timer',
    TriggerName: trigger,
    Time: `${at.toISOString().slice(0, 19)}Z`,
    Message: '',
  };
}
