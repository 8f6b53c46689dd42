/**
 * What each stored change tells whom (服务通知). The domain calls these right after the
 * compare-and-set of the change they report has landed, in the invocation that won it, never
 * before or inside the write: a notice is a side effect of a stored change, so these never
 * throw and never fail the money path.
 *
 * Exactly once per change: the outbox id is (kind, subject, recipient), and each subject
 * names the change. Subjects are the order id, the refund id, or the bill date; a refund's
 * 退款待处理 adds the state (`R…:FAILED`), because one refund may need the merchant more than
 * once for different reasons (FAILED, then later ABNORMAL), while the same reason again
 * (FAILED → retried by the merchant → FAILED) is the one the merchant already heard of and
 * acted on: it sends nothing new.
 */
import type { OrderItemView, RefundStatus } from '../contract';
import type { Deps } from '../domain/deps';
import { COLLECTIONS, type OrderDoc, type RefundDoc } from '../domain/model';
import { type NoticeKind, type RefundFacts, STATUS_WORD } from './kinds';
import { type NoticeRuntime, type NotifyInput, notify, SEND_BUDGET_MS } from './outbox';

/** The notice's "what was bought": 西湖龙井 ×2、月饼礼盒 ×1 (the thing rule cuts it to 20 characters). */
export function productOf(items: readonly OrderItemView[]): string {
  return items.map((i) => `${i.name} ×${i.quantity}`).join('、');
}

export function orderPaidNotice(order: OrderDoc, paidAtMs: number): NotifyInput<'order_paid'> {
  return {
    kind: 'order_paid',
    subject: order._id,
    data: { orderId: order._id, totalFee: order.totalFee, product: productOf(order.items), atMs: paidAtMs },
  };
}

/** What a refund's step did, as far as the notices care. */
export type RefundStep =
  /** The shopper applied: PENDING_REVIEW. */
  | 'applied'
  /** The merchant approved it (from PENDING_REVIEW or FAILED). */
  | 'approved'
  | 'rejected'
  /** The merchant marked an ABNORMAL one resolved: SUCCESS. */
  | 'resolved'
  /** WeChat refused the refund call: FAILED. */
  | 'failed'
  /** WeChat's word from a refund notify or refundquery: SUCCESS, CLOSED or ABNORMAL. */
  | 'wechat';

/** `NOTENOUGH: 基本账户余额不足…` → `基本账户余额不足…`: a thing field keeps only 20 characters. */
export function reasonText(reason: string | undefined): string | undefined {
  const m = /^[A-Z0-9_]+: (.+)$/s.exec(reason ?? '');
  return m && /\p{Script=Han}/u.test(m[1]!) ? m[1] : reason;
}

const ATTENTION_DETAIL: Partial<Record<RefundStatus, string>> = {
  CLOSED: '微信关闭了退款，未退回资金，可重新发起',
  ABNORMAL: '退款未到账，请在商户平台手动处理',
};

/**
 * The notices of one refund step, from the refund as the step stored it; `from` is the state
 * it left (for `wechat`: a SUCCESS flagged in this step, not one flagged while ABNORMAL).
 */
export function refundNotices(
  refund: RefundDoc,
  step: RefundStep,
  atMs: number,
  from?: RefundStatus,
): NotifyInput[] {
  const facts = (extra: Partial<RefundFacts> = {}): RefundFacts => ({
    refundId: refund._id,
    orderId: refund.orderId,
    refundFee: refund.refundFee,
    status: refund.status,
    atMs,
    reason: refund.reason,
    ...(refund.contact ? { contact: refund.contact } : {}),
    ...(refund.comment ? { comment: refund.comment } : {}),
    ...extra,
  });
  const toShopper = (kind: NoticeKind): NotifyInput => ({
    kind,
    subject: refund._id,
    recipients: [refund.openid],
    data: facts(),
  });
  const attention = (detail: string | undefined): NotifyInput => ({
    kind: 'refund_attention',
    subject: `${refund._id}:${refund.status}`,
    data: facts(detail ? { detail } : {}),
  });
  switch (step) {
    case 'applied':
      return [{ kind: 'refund_applied', subject: refund._id, data: facts() }];
    case 'approved':
      return [toShopper('refund_approved')];
    case 'rejected':
      return [toShopper('refund_rejected')];
    case 'resolved':
      return [toShopper('refund_completed')];
    case 'failed':
      return [attention(reasonText(refund.failReason))];
    case 'wechat':
      switch (refund.status) {
        case 'SUCCESS': {
          const flagged = refund.flag === 'SUCCESS_AFTER_FINAL' && from !== 'ABNORMAL';
          const was = STATUS_WORD[refund.flaggedFrom ?? 'REJECTED'] ?? '已结束';
          return [
            toShopper('refund_completed'),
            ...(flagged ? [attention(`微信已退款，本店原记为${was}`)] : []),
          ];
        }
        case 'CLOSED':
          return [attention(ATTENTION_DETAIL.CLOSED), toShopper('refund_closed')];
        case 'ABNORMAL':
          return [attention(ATTENTION_DETAIL.ABNORMAL)];
        default:
          return [];
      }
  }
}

export function billMismatchNotice(
  billDate: string,
  billDayMs: number,
  mismatches: number,
  atMs: number,
): NotifyInput<'bill_mismatch'> {
  return { kind: 'bill_mismatch', subject: billDate, data: { billDayMs, mismatches, atMs } };
}

/**
 * How long a send may hold up the caller: half of what is left before the invocation's call
 * deadline, at most SEND_BUDGET_MS. payNotify (5 s, WeChat's own wait for the reply) gets
 * about 1.7 s; with less than MIN_SEND_BUDGET_MS the notice is written PENDING and reconcile
 * sends it, rather than holding the reply.
 */
export function sendBudgetMs(deps: Pick<Deps, 'budget' | 'now'>): number {
  return Math.max(0, Math.min(SEND_BUDGET_MS, Math.floor((deps.budget.callDeadlineMs - deps.now()) / 2)));
}

/** Writes and sends `inputs` side by side. Never throws. */
export async function tell(deps: Deps, inputs: readonly NotifyInput[]): Promise<void> {
  if (!deps.notices || inputs.length === 0) return;
  const budgetMs = sendBudgetMs(deps);
  await Promise.all(inputs.map((input) => notify(deps, input, { budgetMs })));
}

export async function tellOrderPaid(deps: Deps, order: OrderDoc, paidAtMs: number): Promise<void> {
  if (!deps.notices) return;
  try {
    await tell(deps, [orderPaidNotice(order, paidAtMs)]);
  } catch (e) {
    deps.log('error', 'notice.error', { orderId: order._id, error: e });
  }
}

/** Whether a notice of `kind` written here may show the product (which a refund does not hold). */
function mayShowProduct(runtime: NoticeRuntime, kind: NoticeKind): boolean {
  // Deferred: reconcile's template may show it, and reconcile renders from what is written now.
  if (runtime.kinds && !runtime.kinds.includes(kind)) return true;
  return runtime.config.templates[kind]?.fields.some((f) => f.variable === 'product') ?? false;
}

/**
 * The notices of a refund step. The product is read from the order only when a template may
 * show it (`product` when the caller has the order at hand).
 */
export async function tellRefund(
  deps: Deps,
  refund: RefundDoc,
  step: RefundStep,
  known: { from?: RefundStatus; product?: string } = {},
): Promise<void> {
  const runtime = deps.notices;
  if (!runtime) return;
  try {
    const inputs = refundNotices(refund, step, deps.now(), known.from);
    let product = known.product;
    if (product === undefined && inputs.some((i) => mayShowProduct(runtime, i.kind))) {
      const order = await deps.store.get<OrderDoc>(COLLECTIONS.orders, refund.orderId);
      if (order) product = productOf(order.items);
    }
    if (product !== undefined) for (const i of inputs) (i.data as RefundFacts).product = product;
    await tell(deps, inputs);
  } catch (e) {
    deps.log('error', 'notice.error', { refundId: refund._id, step, error: e });
  }
}
