/**
 * How often reconcile looks again at something it could not finish. Every item carries its
 * own `nextCheckAtMs`, so a few stuck ones wait their turn instead of hiding newer ones, and
 * the gaps grow: a bank-card refund can take days ("银行卡支付的退款3个工作日后重新查询退款状态").
 * Gaps are production times; `config.timeScale` shrinks them only in the sandbox.
 */
const MIN = 60_000;

/** An unpaid order whose notify did not come: ask orderquery again after… */
export const ORDER_CHECK_GAPS_MS = [1, 2, 4, 8, 15, 30].map((m) => m * MIN);
/** A refund WeChat accepted: ask refundquery again after… (then daily, for as long as it lasts). */
export const REFUND_QUERY_GAPS_MS = [1, 2, 5, 10, 30, 60, 120, 240, 480, 720, 1440].map((m) => m * MIN);
/** An approved refund WeChat did not take yet (no answer, busy): submit again after… */
export const SUBMIT_RETRY_GAPS_MS = [1, 2, 5, 10, 30, 60].map((m) => m * MIN);
/** INVALID_REQ_TOO_MUCH: "连续错误请求数过多被系统短暂屏蔽 — 1分钟后再来重试". */
export const RATE_LIMIT_WAIT_MS = MIN;
/** A check that something finished (a release after a rejection, a crash mid-apply). */
export const FOLLOW_UP_MS = 10 * MIN;

/** The gap after the `n`th look (0-based), scaled; the last gap repeats. */
export function gapMs(gaps: readonly number[], n: number, timeScale: number): number {
  const g = gaps[Math.min(Math.max(0, n), gaps.length - 1)] ?? MIN;
  return Math.max(1, Math.round(g * timeScale));
}
