/**
 * The port to `cloud.openapi.subscribeMessage.send` (runtime/subscribe.ts wires the SDK; tests
 * may pass their own) and what its failures mean for the outbox.
 */
import type { MiniprogramState } from './config';
import type { TemplateData } from './render';

export interface SubscribeMessage {
  touser: string;
  templateId: string;
  page?: string;
  data: TemplateData;
  miniprogramState: MiniprogramState;
  lang: 'zh_CN';
}

export type SendResult = { ok: true } | { ok: false; errCode: number; errMsg: string };

/** Resolves with WeChat's answer; a rejection is treated as an outcome-unknown failure. */
export type SubscribeSend = (message: SubscribeMessage) => Promise<SendResult>;

/**
 * WeChat's answers that no retry can change (subscribeMessage.send's errcode list):
 * 43101 the user has no acceptance left for this template (refused, or used it up);
 * 40003 bad openid; 40037 bad template id; 47003 a value breaks its rule;
 * 41030 the page is not in the released mini-program; 43107 the template or account is banned.
 */
export const FINAL_ERRCODES: ReadonlySet<number> = new Set([43101, 40003, 40037, 47003, 41030, 43107]);

/**
 * `final`: recorded, never sent again. `retry`: WeChat or CloudBase answered without sending
 * (system busy, rate limit, a permission that is still propagating: -604101 lasts up to 10
 * minutes after a deploy), so sending again cannot duplicate it. `unknown`: the request may
 * have reached WeChat (a timeout, a reset connection); sending again could deliver it twice,
 * so it is recorded and left alone.
 */
export type FailureClass = 'final' | 'retry' | 'unknown';

const OUTCOME_UNKNOWN = /time(d)?\s?out|ETIMEDOUT|ESOCKETTIMEDOUT|ECONNRESET|socket hang up|EPIPE/i;

export function classifyFailure(errCode: number, errMsg: string): FailureClass {
  if (FINAL_ERRCODES.has(errCode)) return 'final';
  if (OUTCOME_UNKNOWN.test(errMsg)) return 'unknown';
  return 'retry';
}
