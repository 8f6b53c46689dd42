import { api, payOrder } from '../../services/api';
import { userMessageOf } from '../../utils/errors';
import { PAY_OUTCOME_MESSAGE } from '../../utils/payment';
import { type OrderRow, orderRow, type RefundRow, refundRow } from '../../utils/view';

Component({
  data: {
    orderId: '',
    order: null as OrderRow | null,
    refunds: [] as RefundRow[],
    loading: false,
    errorText: '',
    paying: false,
  },
  methods: {
    onLoad(query: Record<string, string | undefined>) {
      this.setData({ orderId: query['orderId'] ?? '' });
      void this.load();
    },
    /** Back from the refund form: show the new refund. */
    onShow() {
      if (this.data.order) void this.load();
    },
    onPullDownRefresh() {
      void this.load().then(() => wx.stopPullDownRefresh());
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
        this.setData({
          order: orderRow(order),
          // Newest first: the refund the shopper is waiting on is the one they look for.
          refunds: [...refunds].sort((a, b) => b.createdAtMs - a.createdAtMs).map(refundRow),
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

    onApplyRefund() {
      wx.navigateTo({ url: `/pages/refund-apply/index?orderId=${encodeURIComponent(this.data.orderId)}` });
    },
  },
});
