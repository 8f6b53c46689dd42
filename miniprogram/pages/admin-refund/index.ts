import type { RefundView } from '../../../cloudfunctions/shared/contract';
import { api } from '../../services/api';
import { confirmModal } from '../../utils/confirm';
import { userMessageOf } from '../../utils/errors';
import {
  confirmDecision,
  type Decision,
  decisionResult,
  REJECT_NEEDS_COMMENT,
} from '../../utils/refund-guide';
import { type AdminRefundRow, adminRefundRow, type OrderRow, orderRow } from '../../utils/view';

/**
 * One refund for the merchant, loaded by its id (getRefund): opened from the review list, a
 * shared link or a notice alike, and refreshed on demand.
 */
Component({
  data: {
    refundId: '',
    refund: null as AdminRefundRow | null,
    /** The raw refund: the amount and state the confirmation names. */
    view: null as RefundView | null,
    order: null as OrderRow | null,
    loading: false,
    loadError: '',
    comment: '',
    /** Comments the merchant can pick when rejecting (refundReasons). */
    rejectReasons: [] as string[],
    submitting: false,
    resultText: '',
    errorText: '',
  },
  methods: {
    onLoad(query: Record<string, string | undefined>) {
      this.setData({ refundId: query['refundId'] ?? '' });
      void this.load();
      void api
        .refundReasons()
        .then((r) => this.setData({ rejectReasons: r.reject }))
        .catch((err) => console.warn('refundReasons failed; no preset rejection comments', err));
    },
    onPullDownRefresh() {
      void this.load().then(() => wx.stopPullDownRefresh());
    },
    onRefresh() {
      void this.load();
    },

    async load() {
      if (!this.data.refundId) {
        this.setData({ loadError: '缺少退款单号，请从退款审核列表进入' });
        return;
      }
      if (this.data.loading) return;
      this.setData({ loading: true, loadError: '' });
      try {
        const { refund, order } = await api.getRefund({ refundId: this.data.refundId });
        this.show(refund);
        this.setData({ order: orderRow(order) });
      } catch (err) {
        this.setData({ loadError: userMessageOf(err) });
      } finally {
        this.setData({ loading: false });
      }
    },

    show(refund: RefundView) {
      this.setData({ refund: adminRefundRow(refund), view: refund, refundId: refund.refundId });
    },

    onComment(e: WechatMiniprogram.Input) {
      this.setData({ comment: e.detail.value, errorText: '' });
    },
    onPickComment(e: WechatMiniprogram.TouchEvent<object, object, { text: string }>) {
      this.setData({ comment: e.currentTarget.dataset.text, errorText: '' });
    },

    /** Every button of the refund's actions: approve, retry (approve again), reject, resolve. */
    async onDecide(e: WechatMiniprogram.TouchEvent<object, object, { decision: Decision }>) {
      const decision = e.currentTarget.dataset.decision;
      const view = this.data.view;
      const action = this.data.refund?.actions.find((a) => a.decision === decision);
      if (!action || !view || this.data.submitting) return;
      const comment = this.data.comment.trim();
      if (action.needsComment && comment === '') {
        this.setData({ errorText: REJECT_NEEDS_COMMENT });
        return;
      }
      // Money moves on approve and retry, and cannot be called back: say how much, and ask.
      const ask = confirmDecision(decision, view, comment);
      const ok = await confirmModal({
        title: ask.title.zh,
        content: ask.content.zh,
        confirmText: ask.confirm.zh,
      });
      if (ok) await this.decide(decision);
    },

    async decide(decision: Decision) {
      const refund = this.data.refund;
      // Synchronous guard: a double tap must not approve (and pay out) twice.
      if (this.data.submitting || !refund) return;
      this.setData({ submitting: true, errorText: '', resultText: '' });
      try {
        const comment = this.data.comment.trim();
        const res = await api.approveRefund({
          refundId: refund.refundId,
          decision,
          ...(comment ? { comment } : {}),
        });
        // Retrying a CLOSED refund answers with its successor (a new refund number): shown here.
        this.show(res.refund);
        this.setData({ comment: '', resultText: decisionResult(decision, refund, res.refund).zh });
        const channel = this.getOpenerEventChannel?.();
        channel?.emit?.('updated', res.refund);
      } catch (err) {
        const message = userMessageOf(err);
        this.setData({ errorText: message });
        wx.showModal({ title: '操作失败', content: message, showCancel: false });
      } finally {
        this.setData({ submitting: false });
      }
    },

    onCopy(e: WechatMiniprogram.TouchEvent<object, object, { text: string }>) {
      const text = e.currentTarget.dataset.text;
      if (text) wx.setClipboardData({ data: text });
    },
  },
});
