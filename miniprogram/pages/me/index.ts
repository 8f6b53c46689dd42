import { api } from '../../services/api';
import { userMessageOf } from '../../utils/errors';

/**
 * "我的": who the shop thinks you are. The merchant needs their own openid to become an admin
 * (ADMIN_OPENIDS in the functions' configuration), and the mini-program is the only place
 * that can tell it: an openid is per mini-program, so no other WeChat screen shows it.
 */
Component({
  data: {
    openid: '',
    isAdmin: false,
    loaded: false,
    loading: false,
    errorText: '',
  },
  methods: {
    onLoad() {
      void this.load();
    },
    onPullDownRefresh() {
      void this.load().then(() => wx.stopPullDownRefresh());
    },

    async load() {
      if (this.data.loading) return;
      this.setData({ loading: true, errorText: '' });
      try {
        const me = await api.whoami();
        this.setData({ openid: me.openid, isAdmin: me.isAdmin, loaded: true });
      } catch (err) {
        this.setData({ errorText: userMessageOf(err) });
      } finally {
        this.setData({ loading: false });
      }
    },

    onRetry() {
      void this.load();
    },

    onCopy() {
      if (!this.data.openid) return;
      wx.setClipboardData({ data: this.data.openid });
    },

    onAdmin() {
      wx.navigateTo({ url: '/pages/admin-refunds/index' });
    },

    /** 对账: each day's bill against the books, and what to do about a difference. */
    onBillChecks() {
      wx.navigateTo({ url: '/pages/admin-billchecks/index' });
    },
  },
});
