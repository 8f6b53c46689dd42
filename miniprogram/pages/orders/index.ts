import type { ListOrdersEvent } from '../../../cloudfunctions/shared/contract';
import { api } from '../../services/api';
import { CANCEL_OUTCOME_MESSAGE, confirmModal } from '../../utils/confirm';
import { userMessageOf } from '../../utils/errors';
import { startTicker, stopTicker } from '../../utils/ticker';
import { countdownPatch, type OrderRow, orderRow } from '../../utils/view';

type Tab = 'all' | 'payable' | 'paid' | 'afterSale' | 'closed';

/** Each tab and the listOrders filter behind it: 待支付 lists what can still be paid, 售后 what has refunds. */
const TABS: { key: Tab; label: string; event: ListOrdersEvent }[] = [
  { key: 'all', label: '全部', event: {} },
  { key: 'payable', label: '待支付', event: { filter: 'payable' } },
  { key: 'paid', label: '已支付', event: { status: 'PAID' } },
  { key: 'afterSale', label: '售后', event: { filter: 'afterSale' } },
  { key: 'closed', label: '已关闭', event: { status: 'CLOSED' } },
];

Component({
  data: {
    tabs: TABS.map(({ key, label }) => ({ key, label })),
    tab: 'all' as Tab,
    orders: [] as OrderRow[],
    nextCursor: null as string | null,
    loading: false,
    loaded: false,
    errorText: '',
    cancelling: '',
  },
  methods: {
    onLoad(query: Record<string, string | undefined>) {
      const tab = TABS.find((t) => t.key === query['tab']);
      if (tab) this.setData({ tab: tab.key });
      void this.load(null);
    },
    /** Coming back from an order detail: its status or refunds may have changed. */
    onShow() {
      this.startTicking();
      if (this.data.loaded) void this.load(null);
    },
    onHide() {
      this.stopTicking();
    },
    onUnload() {
      this.stopTicking();
    },
    onPullDownRefresh() {
      void this.load(null).then(() => wx.stopPullDownRefresh());
    },
    onReachBottom() {
      if (this.data.nextCursor && !this.data.loading) void this.load(this.data.nextCursor);
    },

    startTicking() {
      startTicker(this, () => this.tick());
    },
    stopTicking() {
      stopTicker(this);
    },
    /** One second on the unpaid orders' countdowns; only those rows change. */
    tick(nowMs: number = Date.now()) {
      const patch = countdownPatch(this.data.orders, (i) => `orders[${i}]`, nowMs);
      if (Object.keys(patch).length > 0) this.setData(patch);
    },

    onTab(e: WechatMiniprogram.TouchEvent<object, object, { key: Tab }>) {
      const tab = e.currentTarget.dataset.key;
      if (tab === this.data.tab) return;
      this.setData({ tab, orders: [], nextCursor: null, loaded: false, loading: false });
      void this.load(null);
    },

    /** cursor null: first page, replacing the list. */
    async load(cursor: string | null) {
      if (this.data.loading) return;
      const tab = this.data.tab;
      const filter = TABS.find((t) => t.key === tab)?.event ?? {};
      this.setData({ loading: true, errorText: '' });
      try {
        const page = await api.listOrders({ ...filter, ...(cursor ? { cursor } : {}) });
        // The shopper switched tabs while this page was loading: its rows belong to another filter.
        if (tab !== this.data.tab) return;
        const now = Date.now();
        const rows = page.items.map((o) => orderRow(o, now));
        this.setData({
          orders: cursor ? [...this.data.orders, ...rows] : rows,
          nextCursor: page.nextCursor,
          loaded: true,
        });
      } catch (err) {
        if (tab === this.data.tab) this.setData({ errorText: userMessageOf(err) });
      } finally {
        if (tab === this.data.tab) this.setData({ loading: false });
      }
    },

    onRetry() {
      void this.load(null);
    },

    onOpen(e: WechatMiniprogram.TouchEvent<object, object, { id: string }>) {
      wx.navigateTo({
        url: `/pages/order-detail/index?orderId=${encodeURIComponent(e.currentTarget.dataset.id)}`,
      });
    },

    async onCancel(e: WechatMiniprogram.TouchEvent<object, object, { id: string }>) {
      const orderId = e.currentTarget.dataset.id;
      if (this.data.cancelling) return;
      const ok = await confirmModal({
        title: '取消订单',
        content: '取消后订单不能再支付，商品需重新下单',
        confirmText: '取消订单',
      });
      if (!ok) return;
      this.setData({ cancelling: orderId });
      try {
        const out = await api.cancelOrder({ orderId });
        const at = this.data.orders.findIndex((o) => o.orderId === orderId);
        if (at >= 0) this.setData({ [`orders[${at}]`]: orderRow(out.order) });
        wx.showToast({ title: CANCEL_OUTCOME_MESSAGE[out.outcome], icon: 'none' });
      } catch (err) {
        wx.showModal({ title: '取消失败', content: userMessageOf(err), showCancel: false });
      } finally {
        this.setData({ cancelling: '' });
      }
    },
  },
});
