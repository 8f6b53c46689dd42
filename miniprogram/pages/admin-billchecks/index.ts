import type { BillCheckView } from '../../../cloudfunctions/shared/contract';
import { api } from '../../services/api';
import { type BillCheckRow, billCheckRow, yesterdayBeijing } from '../../utils/billcheck';
import { userMessageOf } from '../../utils/errors';

/**
 * 对账: the daily comparison with WeChat's bill, newest day first. Each day shows WeChat's
 * totals, what the check booked by itself, and every difference with what to do about it.
 * The merchant can check a day again (or a day the timer has not reached) at once.
 */
Component({
  data: {
    items: [] as BillCheckView[],
    rows: [] as BillCheckRow[],
    nextCursor: null as string | null,
    loading: false,
    loaded: false,
    errorText: '',
    /** null until whoami answers; the server refuses non-admins anyway (FORBIDDEN). */
    isAdmin: null as boolean | null,
    /** The day to check now, yyyy-MM-dd (the picker's format). */
    date: '',
    maxDate: '',
    running: false,
    open: '' as string,
  },
  methods: {
    async onLoad() {
      const yesterday = yesterdayBeijing(Date.now());
      this.setData({ date: yesterday, maxDate: yesterday });
      try {
        const me = await api.whoami();
        this.setData({ isAdmin: me.isAdmin });
      } catch (err) {
        this.setData({ errorText: userMessageOf(err) });
        return;
      }
      if (this.data.isAdmin) await this.load(null);
    },
    onPullDownRefresh() {
      const done = this.data.isAdmin ? this.load(null) : this.onLoad();
      void done.then(() => wx.stopPullDownRefresh());
    },
    onReachBottom() {
      if (this.data.nextCursor && !this.data.loading) void this.load(this.data.nextCursor);
    },

    async load(cursor: string | null) {
      if (this.data.loading) return;
      this.setData({ loading: true, errorText: '' });
      try {
        const page = await api.listBillChecks(cursor ? { cursor } : {});
        const items = cursor ? [...this.data.items, ...page.items] : page.items;
        this.setData({ items, rows: items.map(billCheckRow), nextCursor: page.nextCursor, loaded: true });
      } catch (err) {
        this.setData({ errorText: userMessageOf(err) });
      } finally {
        this.setData({ loading: false });
      }
    },

    onRetry() {
      void (this.data.isAdmin ? this.load(null) : this.onLoad());
    },

    onDate(e: WechatMiniprogram.PickerChange) {
      this.setData({ date: String(e.detail.value) });
    },

    onToggle(e: WechatMiniprogram.TouchEvent<object, object, { date: string }>) {
      const date = e.currentTarget.dataset.date;
      this.setData({ open: this.data.open === date ? '' : date });
    },

    /** Checks the chosen day now; the answer replaces (or adds) that day in the list. */
    async onRun() {
      if (this.data.running || !this.data.date) return;
      this.setData({ running: true, errorText: '' });
      try {
        const res = await api.runBillCheck({ date: this.data.date.replace(/-/g, '') });
        const check = res.check;
        const others = this.data.items.filter((i) => i.billDate !== check.billDate);
        const items = [...others, check].sort((a, b) => (a.billDate < b.billDate ? 1 : -1));
        this.setData({ items, rows: items.map(billCheckRow), open: check.billDate });
        const row = billCheckRow(check);
        wx.showToast({ title: res.ran ? row.statusLabel : '该日正在对账中', icon: 'none' });
      } catch (err) {
        this.setData({ errorText: userMessageOf(err) });
      } finally {
        this.setData({ running: false });
      }
    },
  },
});
