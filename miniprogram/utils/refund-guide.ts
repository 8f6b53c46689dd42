/**
 * What each refund state means to the person looking at it, and what the merchant can do
 * about it. The mini-program's pages and the sandbox console both read this one table, so a
 * state never says one thing on the phone and another in the console.
 */
import type { RefundHistoryEntry, RefundStatus, RefundView } from '../../cloudfunctions/shared/contract';
import { REFUND_STATUS_LABEL } from './labels';
import { fenToYuan } from './money';

/** Chinese for the mini-program, English beside it in the console. */
export interface Text {
  zh: string;
  en: string;
}

/**
 * The shopper's line under a refund that did not go through. Never WeChat's reason: it is
 * about the merchant's account (NOTENOUGH: 基本账户余额不足…), not the shopper's business,
 * and the shopper's view does not carry it.
 */
export const SHOPPER_NOTES: Partial<Record<RefundStatus, Text>> = {
  APPROVED: { zh: '商家已同意，等待微信支付受理', en: 'Approved; waiting for WeChat Pay to accept it' },
  FAILED: { zh: '退款暂未成功，商家正在处理', en: 'Not refunded yet; the merchant is handling it' },
  CLOSED: { zh: '退款未完成，商家正在处理', en: 'Not refunded yet; the merchant is handling it' },
  ABNORMAL: {
    zh: '退款到账遇到问题，商家正在处理',
    en: 'The refund could not reach you yet; the merchant is handling it',
  },
};

/** The shopper's line for a refund, if its state needs one. */
export function shopperNote(r: Pick<RefundView, 'status' | 'successorId'>): Text | null {
  if (r.status === 'CLOSED' && r.successorId)
    return {
      zh: '商家已重新发起退款，见新的退款记录',
      en: 'The merchant has refunded it again: see the new refund',
    };
  return SHOPPER_NOTES[r.status] ?? null;
}

export type Decision = 'approve' | 'reject' | 'resolve';

export interface MerchantAction {
  decision: Decision;
  label: Text;
  /** The shopper reads the comment of a rejection, so one is asked for. */
  needsComment: boolean;
  /** The one to press when unsure. */
  primary: boolean;
}

export interface MerchantGuide {
  /** What the state means and what to do; empty when there is nothing to say. */
  note: Text | null;
  actions: MerchantAction[];
}

const action = (decision: Decision, zh: string, en: string, primary = decision !== 'reject') => ({
  decision,
  label: { zh, en },
  needsComment: decision === 'reject',
  primary,
});

/** Said when a rejection is sent without a comment: the shopper reads it. */
export const REJECT_NEEDS_COMMENT = '拒绝时请填写说明，用户会看到';

/** The merchant platform screen where WeChat has the merchant settle a CHANGE refund by hand. */
export const MANUAL_REFUND_SCREEN = '商户平台 → 交易中心 → 退款 手动处理';

/**
 * What the merchant reads and may press for a refund in its current state. A flagged SUCCESS
 * has its own line (flagNote), shown in every state it can be in.
 */
export function merchantGuide(r: Pick<RefundView, 'status' | 'successorId'>): MerchantGuide {
  switch (r.status) {
    case 'PENDING_REVIEW':
      return {
        note: null,
        actions: [action('approve', '同意退款', 'Approve'), action('reject', '拒绝', 'Reject')],
      };
    case 'APPROVED':
      return {
        note: {
          zh: '已同意，微信支付尚未受理（如限频或暂时不可用），对账任务会用同一退款单号自动重试',
          en: 'Approved, not yet accepted by WeChat Pay (rate limit, outage); reconcile resubmits it with the same refund number',
        },
        actions: [],
      };
    case 'PROCESSING':
      return {
        note: { zh: '微信支付已受理，等待退款结果', en: 'Accepted by WeChat Pay; waiting for the result' },
        actions: [],
      };
    case 'FAILED':
      return {
        note: {
          zh: '微信支付拒绝了这笔退款申请（原因见下）。处理原因后（如为基本账户充值）可用同一退款单号重新发起，或拒绝并说明原因',
          en: 'WeChat Pay refused this refund (reason below). Fix the cause (e.g. top up the balance) and retry with the same refund number, or reject it with a comment',
        },
        actions: [action('approve', '重新发起退款', 'Retry'), action('reject', '拒绝', 'Reject')],
      };
    case 'CLOSED':
      if (r.successorId) {
        return {
          note: {
            zh: `已作为新退款单 ${r.successorId} 重新发起，这笔不再处理`,
            en: `Retried as the new refund ${r.successorId}; nothing more to do here`,
          },
          actions: [],
        };
      }
      return {
        note: {
          zh: '微信支付关闭了这笔退款，钱没有退出。可作为新退款（新的退款单号）重新发起，新退款接管这笔预留金额',
          en: 'WeChat Pay closed this refund; no money moved. Retry it as a new refund (new refund number) that takes over the reserved amount',
        },
        actions: [action('approve', '作为新退款重新发起', 'Retry as a new refund')],
      };
    case 'ABNORMAL':
      return {
        note: {
          zh: `钱已从商户账户退出，但没能到达用户账户（如银行卡已注销），仍计为已退。请到 ${MANUAL_REFUND_SCREEN} 处理，完成后点「标记已处理」`,
          en: `The money left the merchant account but could not reach the shopper's (e.g. a closed bank card); it stays counted as refunded. Settle it on the merchant platform (${MANUAL_REFUND_SCREEN}), then mark it resolved`,
        },
        actions: [action('resolve', '标记已处理', 'Mark resolved')],
      };
    case 'SUCCESS':
    case 'REJECTED':
    case 'WITHDRAWN':
      return { note: null, actions: [] };
  }
}

/**
 * What the merchant confirms before a decision goes out, with the amount: an approval moves
 * money and cannot be called back once WeChat has it.
 */
export function confirmDecision(
  decision: Decision,
  r: Pick<RefundView, 'status' | 'refundFee'>,
  comment = '',
): { title: Text; content: Text; confirm: Text } {
  const yuan = fenToYuan(r.refundFee);
  if (decision === 'reject') {
    return {
      title: { zh: '确认拒绝退款', en: 'Reject this refund?' },
      content: {
        zh: `拒绝这笔 ¥${yuan} 的退款，预留金额退回订单。顾客会看到您的说明：${comment}`,
        en: `Reject the refund of ¥${yuan}; the reserved amount goes back to the order. The shopper reads: ${comment}`,
      },
      confirm: { zh: '拒绝', en: 'Reject' },
    };
  }
  if (decision === 'resolve') {
    return {
      title: { zh: '确认已处理', en: 'Mark resolved?' },
      content: {
        zh: `确认 ¥${yuan} 已在${MANUAL_REFUND_SCREEN}处理完成，这笔退款将记为退款完成`,
        en: `Confirm the ¥${yuan} was settled on the merchant platform; the refund will read refunded`,
      },
      confirm: { zh: '标记已处理', en: 'Mark resolved' },
    };
  }
  if (r.status === 'CLOSED') {
    return {
      title: { zh: '确认重新发起退款', en: 'Retry as a new refund?' },
      content: {
        zh: `以新的退款单号向微信支付重新退款 ¥${yuan}，原路退回顾客，提交后无法撤回`,
        en: `Send ¥${yuan} to WeChat Pay again under a new refund number, back the way it was paid; this cannot be undone`,
      },
      confirm: { zh: '重新发起', en: 'Retry' },
    };
  }
  if (r.status === 'FAILED') {
    return {
      title: { zh: '确认重新发起退款', en: 'Retry this refund?' },
      content: {
        zh: `用同一退款单号再次向微信支付退款 ¥${yuan}，原路退回顾客，提交后无法撤回`,
        en: `Send ¥${yuan} to WeChat Pay again with the same refund number; this cannot be undone`,
      },
      confirm: { zh: '重新发起', en: 'Retry' },
    };
  }
  return {
    title: { zh: '确认同意退款', en: 'Approve this refund?' },
    content: {
      zh: `将 ¥${yuan} 原路退回给顾客，提交微信支付后无法撤回`,
      en: `¥${yuan} goes back to the shopper the way they paid; once WeChat Pay has it, it cannot be undone`,
    },
    confirm: { zh: '同意退款', en: 'Approve' },
  };
}

/** WeChat paid a refund this shop had already ended: booked anyway, and said so. */
export function flagNote(r: Pick<RefundView, 'flag' | 'flaggedFrom'>): Text | null {
  if (r.flag !== 'SUCCESS_AFTER_FINAL') return null;
  const from = r.flaggedFrom ? REFUND_STATUS_LABEL[r.flaggedFrom] : '已结束';
  return {
    zh: `注意：这笔退款在「${from}」之后，微信支付仍退款成功；已计入已退金额，请核对`,
    en: `Note: WeChat Pay refunded this after it was ${r.flaggedFrom ?? 'ended'} here; it is booked as refunded, please check`,
  };
}

/** The merchant's one-line summary after a decision, from the refund the server returned. */
export function decisionResult(
  decision: Decision,
  before: Pick<RefundView, 'refundId'>,
  after: RefundView,
): Text {
  if (decision === 'reject') return { zh: '已拒绝该退款申请', en: 'Rejected' };
  if (decision === 'resolve')
    return after.status === 'SUCCESS'
      ? { zh: '已标记为已处理，退款完成', en: 'Marked resolved: refunded' }
      : { zh: `当前状态：${REFUND_STATUS_LABEL[after.status]}`, en: `Now ${after.status}` };
  const prefix =
    after.refundId !== before.refundId
      ? {
          zh: `已作为新退款单 ${after.refundId} 重新发起，`,
          en: `Retried as the new refund ${after.refundId}: `,
        }
      : { zh: '已同意，', en: 'Approved: ' };
  const state: Record<string, Text> = {
    PROCESSING: { zh: '微信支付已受理，退款中', en: 'WeChat Pay accepted it, processing' },
    SUCCESS: { zh: '退款完成', en: 'refunded' },
    FAILED: { zh: '微信支付拒绝了退款，原因见退款详情', en: 'WeChat Pay refused it, see the reason' },
    APPROVED: { zh: '微信支付尚未受理，稍后自动重试', en: 'not accepted yet, reconcile will retry' },
  };
  const s = state[after.status] ?? { zh: `当前状态：${REFUND_STATUS_LABEL[after.status]}`, en: after.status };
  return { zh: `${prefix.zh}${s.zh}`, en: `${prefix.en}${s.en}` };
}

const SOURCE_LABELS: Record<RefundHistoryEntry['source'], Text> = {
  apply: { zh: '顾客申请', en: 'applied' },
  review: { zh: '商家审核', en: 'review' },
  refund: { zh: '提交微信退款', en: 'refund call' },
  refundnotify: { zh: '退款结果通知', en: 'refund notify' },
  refundquery: { zh: '退款查询', en: 'refundquery' },
  resolve: { zh: '商家标记已处理', en: 'marked resolved' },
  withdraw: { zh: '顾客撤销', en: 'withdrawn' },
  reconcile: { zh: '对账任务', en: 'reconcile' },
};

export interface HistoryRow {
  atMs: number;
  status: RefundStatus;
  statusLabel: string;
  source: Text;
  /** This step's own reason (WeChat's err_code and description, or the merchant's comment). */
  reason: string;
}

/** The refund's steps, oldest first, each with the reason it had then (merchant only). */
export function historyRows(history: readonly RefundHistoryEntry[] | undefined): HistoryRow[] {
  return (history ?? []).map((h) => ({
    atMs: h.atMs,
    status: h.status,
    statusLabel: REFUND_STATUS_LABEL[h.status] ?? h.status,
    source: SOURCE_LABELS[h.source] ?? { zh: h.source, en: h.source },
    reason: h.reason ?? '',
  }));
}
