import type { ListRefundsResult, RefundStatus, RefundView } from '../../../cloudfunctions/shared/contract';
import { api } from '../../services/api';
import { userMessageOf } from '../../utils/errors';
import { loadNoticeTemplates, noticeSwitch, tapNoticeSwitch } from '../../utils/subscribe';
import { type AdminRefundRow, adminRefundRow, type OrderRow, orderRow } from '../../utils/view';

type Filter = RefundStatus | '';
type Item = ListRefundsResult['items'][number];

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
  { key: '', label: '全部' },
];

interface Row extends AdminRefundRow {
  order: OrderRow | null;
}

const toRow = (item: Item): Row => ({
  ...adminRefundRow(item),
  order: item.order ? orderRow(item.order) : null,
});

Component({
  data: {
    tabs: TABS,
    status: 'PENDING_REVIEW' as Filter,
    /** Raw items, handed to the detail page (there is no single-refund function). */
    items: [] as Item[],
    rows: [] as Row[],
    nextCursor: null as string | null,
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
      if (status === this.data.status) return;
      this.setData({ status, items: [], rows: [], nextCursor: null, loaded: false, loading: false });
      void this.load(null);
    },

    async load(cursor: string | null) {
      if (this.data.loading) return;
      const status = this.data.status;
      this.setData({ loading: true, errorText: '' });
      try {
        const page = await api.listRefunds({ ...(status ? { status } : {}), ...(cursor ? { cursor } : {}) });
        // The merchant switched tabs while this page was loading.
        if (status !== this.data.status) return;
        const items = cursor ? [...this.data.items, ...page.items] : page.items;
        this.setData({ items, rows: items.map(toRow), nextCursor: page.nextCursor, loaded: true });
      } catch (err) {
        if (status === this.data.status) this.setData({ errorText: userMessageOf(err) });
      } finally {
        if (status === this.data.status) this.setData({ loading: false });
      }
    },

    onRetry() {
      void (this.data.isAdmin ? this.load(null) : this.onLoad());
    },

    onOpen(e: WechatMiniprogram.TouchEvent<object, object, { id: string }>) {
      const item = this.data.items.find((i) => i.refundId === e.currentTarget.dataset.id);
      if (!item) return;
      wx.navigateTo({
        url: `/pages/admin-refund/index?refundId=${encodeURIComponent(item.refundId)}`,
        events: {
          // The review result comes back so this list shows it without a reload.
          updated: (refund: RefundView) => this.onUpdated(refund),
        },
        success: (res) => res.eventChannel.emit('refund', item),
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
      this.setData({ items, rows: items.map(toRow) });
    },
  },
});
