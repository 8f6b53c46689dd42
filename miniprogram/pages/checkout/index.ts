import type { NoticeTemplateOffer } from '../../../cloudfunctions/shared/contract';
import { payOrder } from '../../services/api';
import { type CartLine, decodeCart, estimateFen, setQuantity, toCreateOrderEvent } from '../../utils/cart';
import { userMessageOf } from '../../utils/errors';
import { fenToYuan } from '../../utils/money';
import { PAY_OUTCOME_MESSAGE } from '../../utils/payment';
import { askSubscribe, choiceNote, loadNoticeTemplates } from '../../utils/subscribe';

interface LineRow extends CartLine {
  priceYuan: string;
  subtotalYuan: string;
}

function lineRow(l: CartLine): LineRow {
  return { ...l, priceYuan: fenToYuan(l.priceFen), subtotalYuan: fenToYuan(l.priceFen * l.quantity) };
}

function rows(cart: CartLine[]): LineRow[] {
  return cart.map(lineRow);
}

Component({
  data: {
    lines: [] as LineRow[],
    estimateYuan: '0.00',
    /** Set from createOrder: the amount WeChat will actually charge. */
    serverTotalYuan: '',
    submitting: false,
    /** The shopper's refund notices, asked for on the pay tap. */
    noticeOffers: [] as NoticeTemplateOffer[],
    subscribeNote: '',
  },
  methods: {
    onLoad(query: Record<string, string | undefined>) {
      this.show(decodeCart(query['cart']));
      if (this.data.lines.length > 0)
        void loadNoticeTemplates().then((t) => this.setData({ noticeOffers: t.shopper }));
    },

    show(cart: CartLine[]) {
      this.setData({ lines: rows(cart), estimateYuan: fenToYuan(estimateFen(cart)) });
    },

    onStep(e: WechatMiniprogram.TouchEvent<object, object, { id: string; delta: string }>) {
      if (this.data.submitting) return;
      const { id, delta } = e.currentTarget.dataset;
      const at = this.data.lines.findIndex((l) => l.productId === id);
      const line = this.data.lines[at];
      if (!line) return;
      const product = { id: line.productId, name: line.name, priceFen: line.priceFen, image: '' };
      const cart = setQuantity(this.data.lines, product, line.quantity + Number(delta));
      const kept = cart.find((l) => l.productId === id);
      // A line that stays changes alone; a line that goes away reshapes the list.
      if (!kept) this.show(cart);
      else this.setData({ [`lines[${at}]`]: lineRow(kept), estimateYuan: fenToYuan(estimateFen(cart)) });
    },

    async onSubmit() {
      // this.data updates synchronously on setData, so a second tap that lands before the
      // button re-renders as disabled still sees submitting and cannot create a second order.
      if (this.data.submitting || this.data.lines.length === 0) return;
      // The prompt only opens before the tap's first await; the purchase goes on whatever the answer.
      const subscribing = askSubscribe(this.data.noticeOffers);
      this.setData({ submitting: true });
      const note = choiceNote(await subscribing);
      this.setData({ subscribeNote: note });
      try {
        const result = await payOrder(toCreateOrderEvent(this.data.lines), {
          onCreated: (created) => {
            this.setData({ serverTotalYuan: fenToYuan(created.totalFee) });
            // The order holds the items from now on: the product list empties its cart.
            this.getOpenerEventChannel?.()?.emit?.('ordered', created);
          },
        });
        const message = PAY_OUTCOME_MESSAGE[result.outcome];
        const url = `/pages/order-detail/index?orderId=${encodeURIComponent(result.orderId)}`;
        // The order exists from here on, whatever happened at the cashier: leave the checkout
        // for its detail page, where an unpaid order offers 继续支付.
        wx.showModal({
          title: message.title,
          content: note ? `${message.content}\n${note}` : message.content,
          showCancel: false,
          complete: () => wx.redirectTo({ url }),
        });
      } catch (err) {
        wx.showModal({ title: '下单失败', content: userMessageOf(err), showCancel: false });
        this.setData({ submitting: false });
      }
    },
  },
});
