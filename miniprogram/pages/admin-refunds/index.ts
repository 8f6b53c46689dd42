import type { ListRefundsResult, RefundStatus, RefundView } from '../../../cloudfunctions/shared/contract';
import { api } from '../../services/api';
import { userMessageOf } from '../../utils/errors';
import { loadNoticeTemplates, noticeSwitch, tapNoticeSwitch } from '../../utils/subscribe';
import { type AdminRefundRow, adminRefundRow, type OrderRow, orderRow } from '../../utils/view';

type Filter = RefundStatus | '';
type Item = ListRefundsResult['items'][number];
type Sort = 'oldest' | 'newest';

/** The states that wait for the merchant first, then the rest. */
const TABS: { key: Filter; label: string }[] = [
  { key: 'PENDING_REVIEW', label: '待审核' },
  { key: 'FAILED', label: '退款失败' },
  { key: 'CLOSED', label: '退款关闭' },
  { key: 'ABNORMAL', label: '退款异常' },
  { key: 'APPROVED', label: '待退款' },
  { key: 'PROCESSING', label: '退款中' },
  { key: 'SUCCESS', label: '退款完成' },
  { key: 'REJECTED', label: '已拒绝' },
  { key: 'WITHDRAWN', label: '已撤销' },
  { key: '', label: '全部' },
];

/** An order number as the merchant pastes it (the shop's out_trade_no). */
const ORDER_NUMBER = /^[0-9A-Za-z_-]{1,32}$/;

interface Row extends AdminRefundRow {
  order: OrderRow | null;
}

const toRow = (item: Item, nowMs: number): Row => ({
  ...adminRefundRow(item, nowMs),
  order: item.order ? orderRow(item.order, nowMs) : null,
});

Component({
  data: {
    tabs: TABS,
    status: 'PENDING_REVIEW' as Filter,
    /** A review queue is worked oldest first: the longest wait is answered first. */
    sort: 'oldest' as Sort,
    /** What the search box holds, and the order number the list is searched by ('' = none). */
    searchText: '',
    searchOrderId: '',
    items: [] as Item[],
    rows: [] as Row[],
    nextCursor: null as string | null,
    /** Refunds waiting for review in the whole shop, whatever the tab. */
    pendingCount: 0,
    loading: false,
    loaded: false,
    errorText: '',
    /** null until whoami answers; the server refuses non-admins anyway (FORBIDDEN). */
    isAdmin: null as boolean | null,
    /** 接收通知: the merchant's notices, asked for again on each tap. */
    notice: noticeSwitch([]),
  },
  methods: {
    async onLoad() {
      try {
        const me = await api.whoami();
        this.setData({ isAdmin: me.isAdmin });
      } catch (err) {
        this.setData({ errorText: userMessageOf(err) });
        return;
      }
      if (!this.data.isAdmin) return;
      void loadNoticeTemplates().then((t) => this.setData({ notice: noticeSwitch(t.admin) }));
      await this.load(null);
    },
    async onNoticeSwitch() {
      this.setData({ notice: await tapNoticeSwitch(this.data.notice) });
    },
    onShow() {
      if (this.data.loaded) void this.load(null);
    },
    onPullDownRefresh() {
      const done = this.data.isAdmin ? this.load(null) : this.onLoad();
      void done.then(() => wx.stopPullDownRefresh());
    },
    onReachBottom() {
      if (this.data.nextCursor && !this.data.loading) void this.load(this.data.nextCursor);
    },

    onTab(e: WechatMiniprogram.TouchEvent<object, object, { key: Filter }>) {
      const status = e.currentTarget.dataset.key;
      if (status === this.data.status && !this.data.searchOrderId) return;
      this.reset({ status, searchOrderId: '', searchText: '' });
    },

    onSort() {
      this.reset({ sort: this.data.sort === 'oldest' ? 'newest' : 'oldest' });
    },

    onSearchInput(e: WechatMiniprogram.Input) {
      this.setData({ searchText: e.detail.value });
    },

    /** Search by order number, across every state: the merchant looks for that order's refunds. */
    onSearch() {
      const orderId = this.data.searchText.trim();
      if (orderId === '') {
        this.onClearSearch();
        return;
      }
      if (!ORDER_NUMBER.test(orderId)) {
        this.setData({ errorText: '订单号由字母、数字、- 和 _ 组成，最多 32 位' });
        return;
      }
      this.reset({ searchOrderId: orderId, searchText: orderId });
    },

    onClearSearch() {
      this.reset({ searchOrderId: '', searchText: '' });
    },

    reset(patch: Record<string, unknown>) {
      this.setData({
        ...patch,
        items: [],
        rows: [],
        nextCursor: null,
        loaded: false,
        loading: false,
        errorText: '',
      });
      void this.load(null);
    },

    /** What the list shows now; a page that comes back for another one is dropped. */
    query() {
      const { status, sort, searchOrderId } = this.data;
      return searchOrderId
        ? { orderId: searchOrderId, order: sort }
        : { ...(status ? { status } : {}), order: sort };
    },

    async load(cursor: string | null) {
      if (this.data.loading) return;
      const query = this.query();
      const key = JSON.stringify(query);
      this.setData({ loading: true, errorText: '' });
      try {
        const page = await api.listRefunds({ ...query, ...(cursor ? { cursor } : {}) });
        // The merchant switched tabs, order or search while this page was loading.
        if (key !== JSON.stringify(this.query())) return;
        const items = cursor ? [...this.data.items, ...page.items] : page.items;
        const now = Date.now();
        this.setData({
          items,
          rows: items.map((i) => toRow(i, now)),
          nextCursor: page.nextCursor,
          pendingCount: page.pendingCount,
          loaded: true,
        });
      } catch (err) {
        if (key === JSON.stringify(this.query())) this.setData({ errorText: userMessageOf(err) });
      } finally {
        if (key === JSON.stringify(this.query())) this.setData({ loading: false });
      }
    },

    onRetry() {
      void (this.data.isAdmin ? this.load(null) : this.onLoad());
    },

    /** The detail page loads the refund itself (getRefund) and hands back what the review changed. */
    onOpen(e: WechatMiniprogram.TouchEvent<object, object, { id: string }>) {
      const refundId = e.currentTarget.dataset.id;
      wx.navigateTo({
        url: `/pages/admin-refund/index?refundId=${encodeURIComponent(refundId)}`,
        events: {
          // The review result comes back so this list shows it without a reload.
          updated: (refund: RefundView) => this.onUpdated(refund),
        },
      });
    },

    onUpdated(refund: RefundView) {
      const known = this.data.items.some((i) => i.refundId === refund.refundId);
      let items = this.data.items.map((i) => {
        if (i.refundId === refund.refundId) return { ...i, ...refund };
        // A CLOSED refund retried as a new one: the old row now points at its successor.
        if (i.refundId === refund.predecessorId) return { ...i, successorId: refund.refundId };
        return i;
      });
      if (!known) {
        const predecessor = items.find((i) => i.refundId === refund.predecessorId);
        items = [{ ...refund, ...(predecessor?.order ? { order: predecessor.order } : {}) }, ...items];
      }
      const now = Date.now();
      this.setData({ items, rows: items.map((i) => toRow(i, now)) });
    },
  },
});
