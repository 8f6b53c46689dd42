import type { ProductView } from '../../../cloudfunctions/shared/contract';
import { api } from '../../services/api';
import { type CartLine, cartCount, encodeCart, estimateFen, setQuantity } from '../../utils/cart';
import { userMessageOf } from '../../utils/errors';
import { fenToYuan } from '../../utils/money';

interface ProductRow extends ProductView {
  priceYuan: string;
  quantity: number;
}

function toRow(p: ProductView, cart: CartLine[]): ProductRow {
  return {
    ...p,
    priceYuan: fenToYuan(p.priceFen),
    quantity: cart.find((l) => l.productId === p.id)?.quantity ?? 0,
  };
}

Component({
  data: {
    products: [] as ProductRow[],
    nextCursor: null as string | null,
    cart: [] as CartLine[],
    count: 0,
    estimateYuan: '0.00',
    loading: false,
    loaded: false,
    errorText: '',
    isAdmin: false,
  },
  methods: {
    onLoad() {
      void this.load(null);
      void this.checkAdmin();
    },
    onPullDownRefresh() {
      void this.load(null).then(() => wx.stopPullDownRefresh());
    },
    onReachBottom() {
      if (this.data.nextCursor) void this.load(this.data.nextCursor);
    },

    /** The merchant entry stays hidden unless the server says so; failure keeps it hidden. */
    async checkAdmin() {
      try {
        const me = await api.whoami();
        this.setData({ isAdmin: me.isAdmin });
      } catch (err) {
        console.warn('whoami failed', err);
      }
    },

    /** cursor null: first page, replacing the list. */
    async load(cursor: string | null) {
      if (this.data.loading) return;
      this.setData({ loading: true, errorText: '' });
      try {
        const page = await api.listProducts(cursor ? { cursor } : {});
        const rows = page.items.map((p) => toRow(p, this.data.cart));
        this.setData({
          products: cursor ? [...this.data.products, ...rows] : rows,
          nextCursor: page.nextCursor,
          loaded: true,
        });
      } catch (err) {
        this.setData({ errorText: userMessageOf(err) });
      } finally {
        this.setData({ loading: false });
      }
    },

    onRetry() {
      void this.load(null);
    },

    onStep(e: WechatMiniprogram.TouchEvent<object, object, { id: string; delta: string }>) {
      const { id, delta } = e.currentTarget.dataset;
      const at = this.data.products.findIndex((p) => p.id === id);
      const product = this.data.products[at];
      if (!product) return;
      const cart = setQuantity(this.data.cart, product, product.quantity + Number(delta));
      // Only the tapped row goes through setData: the list itself can be long.
      this.setData({
        [`products[${at}].quantity`]: cart.find((l) => l.productId === id)?.quantity ?? 0,
        cart,
        count: cartCount(cart),
        estimateYuan: fenToYuan(estimateFen(cart)),
      });
    },

    /** The order now holds these items (and can be paid from 我的订单): the cart starts afresh. */
    clearCart() {
      const patch: Record<string, unknown> = { cart: [], count: 0, estimateYuan: '0.00' };
      this.data.products.forEach((p, i) => {
        if (p.quantity !== 0) patch[`products[${i}].quantity`] = 0;
      });
      this.setData(patch);
    },

    onCheckout() {
      if (this.data.count === 0) {
        wx.showToast({ title: '请先选择商品', icon: 'none' });
        return;
      }
      wx.navigateTo({
        url: `/pages/checkout/index?cart=${encodeCart(this.data.cart)}`,
        events: { ordered: () => this.clearCart() },
      });
    },

    onMyOrders() {
      wx.navigateTo({ url: '/pages/orders/index' });
    },

    onMe() {
      wx.navigateTo({ url: '/pages/me/index' });
    },

    onAdmin() {
      wx.navigateTo({ url: '/pages/admin-refunds/index' });
    },
  },
});
