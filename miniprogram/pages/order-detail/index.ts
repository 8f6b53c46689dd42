import { api, payOrder } from '../../services/api';
import { CANCEL_OUTCOME_MESSAGE, confirmModal } from '../../utils/confirm';
import { userMessageOf } from '../../utils/errors';
import { PAY_OUTCOME_MESSAGE } from '../../utils/payment';
import { startTicker, stopTicker } from '../../utils/ticker';
import { countdownPatch, type OrderRow, orderRow, type RefundRow, refundRow } from '../../utils/view';

Component({
  data: {
    orderId: '',
    order: null as OrderRow | null,
    refunds: [] as RefundRow[],
    loading: false,
    errorText: '',
    paying: false,
    cancelling: false,
    /** The refund being withdrawn: its button waits, a second tap does nothing. */
    withdrawing: '',
  },
  methods: {
    onLoad(query: Record<string, string | undefined>) {
      this.setData({ orderId: query['orderId'] ?? '' });
      void this.load();
    },
    /** Back from the refund form: show the new refund. */
    onShow() {
      startTicker(this, () => this.tick());
      if (this.data.order) void this.load();
    },
    onHide() {
      stopTicker(this);
    },
    onUnload() {
      stopTicker(this);
    },
    onPullDownRefresh() {
      void this.load().then(() => wx.stopPullDownRefresh());
    },

    tick(nowMs: number = Date.now()) {
      const patch = countdownPatch([this.data.order], () => 'order', nowMs);
      if (Object.keys(patch).length > 0) this.setData(patch);
    },

    async load() {
      if (!this.data.orderId) {
        this.setData({ errorText: '缺少订单号' });
        return;
      }
      if (this.data.loading) return;
      this.setData({ loading: true, errorText: '' });
      try {
        const { order, refunds } = await api.queryOrder({ orderId: this.data.orderId });
        const now = Date.now();
        this.setData({
          order: orderRow(order, now),
          // Newest first: the refund the shopper is waiting on is the one they look for.
          refunds: [...refunds].sort((a, b) => b.createdAtMs - a.createdAtMs).map((r) => refundRow(r, now)),
        });
      } catch (err) {
        this.setData({ errorText: userMessageOf(err) });
      } finally {
        this.setData({ loading: false });
      }
    },

    onRetry() {
      void this.load();
    },

    /** 继续支付: the server re-signs the still-valid prepay_id, so no second order is made. */
    async onPayAgain() {
      if (this.data.paying || !this.data.order?.payable) return;
      this.setData({ paying: true });
      try {
        const result = await payOrder({ orderId: this.data.orderId });
        const message = PAY_OUTCOME_MESSAGE[result.outcome];
        if (result.outcome === 'paid') wx.showToast({ title: message.title, icon: 'success' });
        else wx.showModal({ title: message.title, content: message.content, showCancel: false });
      } catch (err) {
        wx.showModal({ title: '无法支付', content: userMessageOf(err), showCancel: false });
      } finally {
        this.setData({ paying: false });
      }
      await this.load();
    },

    async onCancel() {
      if (this.data.cancelling || !this.data.order?.cancellable) return;
      const ok = await confirmModal({
        title: '取消订单',
        content: `取消后这笔 ¥${this.data.order.totalYuan} 的订单不能再支付，商品需重新下单`,
        confirmText: '取消订单',
      });
      if (!ok) return;
      this.setData({ cancelling: true });
      try {
        const out = await api.cancelOrder({ orderId: this.data.orderId });
        this.setData({ order: orderRow(out.order) });
        if (out.outcome === 'PAID')
          wx.showModal({ title: '订单已支付', content: CANCEL_OUTCOME_MESSAGE.PAID, showCancel: false });
        else wx.showToast({ title: CANCEL_OUTCOME_MESSAGE[out.outcome], icon: 'none' });
      } catch (err) {
        wx.showModal({ title: '取消失败', content: userMessageOf(err), showCancel: false });
      } finally {
        this.setData({ cancelling: false });
      }
      if (this.data.order?.status === 'PAID') await this.load();
    },

    onApplyRefund() {
      wx.navigateTo({ url: `/pages/refund-apply/index?orderId=${encodeURIComponent(this.data.orderId)}` });
    },

    /** 撤销申请: only while the merchant has not reviewed it; its amount is refundable again. */
    async onWithdraw(e: WechatMiniprogram.TouchEvent<object, object, { id: string }>) {
      const refundId = e.currentTarget.dataset.id;
      const refund = this.data.refunds.find((r) => r.refundId === refundId);
      if (this.data.withdrawing || !refund?.canWithdraw) return;
      const ok = await confirmModal({
        title: '撤销退款申请',
        content: `撤销这笔 ¥${refund.refundYuan} 的退款申请？撤销后可重新申请`,
        confirmText: '撤销',
      });
      if (!ok) return;
      this.setData({ withdrawing: refundId });
      try {
        const out = await api.withdrawRefund({ refundId });
        const at = this.data.refunds.findIndex((r) => r.refundId === refundId);
        if (at >= 0) this.setData({ [`refunds[${at}]`]: refundRow(out.refund) });
        wx.showToast({ title: '已撤销申请', icon: 'none' });
      } catch (err) {
        wx.showModal({ title: '撤销失败', content: userMessageOf(err), showCancel: false });
      } finally {
        this.setData({ withdrawing: '' });
      }
      // The refundable amount changed (or the merchant got there first): show the order as it is.
      await this.load();
    },

    onCopy(e: WechatMiniprogram.TouchEvent<object, object, { text: string }>) {
      const text = e.currentTarget.dataset.text;
      if (text) wx.setClipboardData({ data: text });
    },
  },
});
