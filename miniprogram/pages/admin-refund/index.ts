import type { ListRefundsResult, RefundView } from '../../../cloudfunctions/shared/contract';
import { api } from '../../services/api';
import { userMessageOf } from '../../utils/errors';
import { REFUND_STATUS_LABEL } from '../../utils/labels';
import { type OrderRow, orderRow, type RefundRow, refundRow } from '../../utils/view';

type Item = ListRefundsResult['items'][number];

/** What the merchant reads after a decision, by the refund's new state. */
function resultText(decision: 'approve' | 'reject', r: RefundView): string {
  if (decision === 'reject') return '已拒绝该退款申请';
  if (r.status === 'PROCESSING') return '已同意，微信支付已受理，退款中';
  if (r.status === 'SUCCESS') return '已同意，退款完成';
  if (r.status === 'FAILED') return `退款失败：${r.failReason ?? '未知原因'}`;
  // APPROVED: WeChat did not accept yet (e.g. unavailable); the reconcile timer retries it.
  return `已同意，当前状态：${REFUND_STATUS_LABEL[r.status]}`;
}

Component({
  data: {
    refund: null as RefundRow | null,
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
        refund: refundRow(refund),
        ...(order ? { order: orderRow(order) } : {}),
      });
    },

    onComment(e: WechatMiniprogram.Input) {
      this.setData({ comment: e.detail.value });
    },

    onApprove() {
      return this.decide('approve');
    },
    /** Retrying a FAILED refund is approve again: the backend resubmits the same out_refund_no. */
    onRetryRefund() {
      return this.decide('approve');
    },
    onReject() {
      if (this.data.comment.trim() === '') {
        this.setData({ errorText: '拒绝时请填写说明，用户会看到' });
        return Promise.resolve();
      }
      return this.decide('reject');
    },

    async decide(decision: 'approve' | 'reject') {
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
        this.show(res.refund);
        this.setData({ resultText: resultText(decision, res.refund) });
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
  },
});
