import type { OrderStatus } from '../../../cloudfunctions/shared/contract';
import { api } from '../../services/api';
import { userMessageOf } from '../../utils/errors';
import { type OrderRow, orderRow } from '../../utils/view';

type Filter = OrderStatus | '';

const TABS: { key: Filter; label: string }[] = [
  { key: '', label: '全部' },
  { key: 'NOTPAY', label: '待支付' },
  { key: 'PAID', label: '已支付' },
  { key: 'CLOSED', label: '已关闭' },
];

Component({
  data: {
    tabs: TABS,
    status: '' as Filter,
    orders: [] as OrderRow[],
    nextCursor: null as string | null,
    loading: false,
    loaded: false,
    errorText: '',
  },
  methods: {
    onLoad() {
      void this.load(null);
    },
    /** Coming back from an order detail: its status or refunds may have changed. */
    onShow() {
      if (this.data.loaded) void this.load(null);
    },
    onPullDownRefresh() {
      void this.load(null).then(() => wx.stopPullDownRefresh());
    },
    onReachBottom() {
      if (this.data.nextCursor && !this.data.loading) void this.load(this.data.nextCursor);
    },

    onTab(e: WechatMiniprogram.TouchEvent<object, object, { key: Filter }>) {
      const status = e.currentTarget.dataset.key;
      if (status === this.data.status) return;
      this.setData({ status, orders: [], nextCursor: null, loaded: false, loading: false });
      void this.load(null);
    },

    /** cursor null: first page, replacing the list. */
    async load(cursor: string | null) {
      if (this.data.loading) return;
      const status = this.data.status;
      this.setData({ loading: true, errorText: '' });
      try {
        const page = await api.listOrders({ ...(status ? { status } : {}), ...(cursor ? { cursor } : {}) });
        // The shopper switched tabs while this page was loading: its rows belong to another filter.
        if (status !== this.data.status) return;
        const rows = page.items.map(orderRow);
        this.setData({
          orders: cursor ? [...this.data.orders, ...rows] : rows,
          nextCursor: page.nextCursor,
          loaded: true,
        });
      } catch (err) {
        if (status === this.data.status) this.setData({ errorText: userMessageOf(err) });
      } finally {
        if (status === this.data.status) this.setData({ loading: false });
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
  },
});
