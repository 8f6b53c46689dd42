import type { ListRefundsResult, RefundView } from '../../../cloudfunctions/shared/contract';
import { api } from '../../services/api';
import { userMessageOf } from '../../utils/errors';
import { type Decision, decisionResult, REJECT_NEEDS_COMMENT } from '../../utils/refund-guide';
import { type AdminRefundRow, adminRefundRow, type OrderRow, orderRow } from '../../utils/view';

type Item = ListRefundsResult['items'][number];

Component({
  data: {
    refund: null as AdminRefundRow | null,
    order: null as OrderRow | null,
    comment: '',
    submitting: false,
    resultText: '',
    errorText: '',
  },
  methods: {
    onLoad() {
      // The list hands over the refund with its order: there is no get-one-refund function.
      const channel = this.getOpenerEventChannel?.();
      channel?.on?.('refund', (item: Item) => this.show(item, item.order));
    },

    show(refund: RefundView, order?: Item['order']) {
      this.setData({
        refund: adminRefundRow(refund),
        ...(order ? { order: orderRow(order) } : {}),
      });
    },

    onComment(e: WechatMiniprogram.Input) {
      this.setData({ comment: e.detail.value });
    },

    /** Every button of the refund's actions: approve, retry (approve again), reject, resolve. */
    onDecide(e: WechatMiniprogram.TouchEvent<object, object, { decision: Decision }>) {
      const decision = e.currentTarget.dataset.decision;
      const action = this.data.refund?.actions.find((a) => a.decision === decision);
      if (!action) return Promise.resolve();
      if (action.needsComment && this.data.comment.trim() === '') {
        this.setData({ errorText: REJECT_NEEDS_COMMENT });
        return Promise.resolve();
      }
      return this.decide(decision);
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
      wx.setClipboardData({ data: e.currentTarget.dataset.text });
    },
  },
});
