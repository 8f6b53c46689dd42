import type { NoticeTemplateOffer } from '../../../cloudfunctions/shared/contract';
import { api } from '../../services/api';
import { CallError, userMessageOf } from '../../utils/errors';
import { fenToYuan } from '../../utils/money';
import { CONTACT_MAX, checkRefundForm, REASON_MAX } from '../../utils/refund-form';
import { type Submission, submissionFor } from '../../utils/request-id';
import { askSubscribe, choiceNote, loadNoticeTemplates } from '../../utils/subscribe';

Component({
  data: {
    orderId: '',
    /** From queryOrder, not from the URL: the server's view of what is left to refund. */
    refundableFee: 0,
    refundableYuan: '0.00',
    totalYuan: '0.00',
    loaded: false,
    amount: '',
    reason: '',
    contact: '',
    reasonMax: REASON_MAX,
    contactMax: CONTACT_MAX,
    errorField: '',
    errorText: '',
    submitting: false,
    /** The last submission's requestId and values: resubmitting the same values is a retry of it. */
    submission: null as Submission | null,
    /** The shopper's refund notices, asked for on the submit tap. */
    noticeOffers: [] as NoticeTemplateOffer[],
    subscribeNote: '',
  },
  methods: {
    onLoad(query: Record<string, string | undefined>) {
      this.setData({ orderId: query['orderId'] ?? '' });
      void this.loadOrder();
      void loadNoticeTemplates().then((t) => this.setData({ noticeOffers: t.shopper }));
    },

    async loadOrder() {
      try {
        const { order } = await api.queryOrder({ orderId: this.data.orderId });
        this.setData({
          refundableFee: order.refundableFee,
          refundableYuan: fenToYuan(order.refundableFee),
          totalYuan: fenToYuan(order.totalFee),
          loaded: true,
        });
      } catch (err) {
        this.setData({ errorField: '', errorText: userMessageOf(err) });
      }
    },

    onAmount(e: WechatMiniprogram.Input) {
      this.setData({ amount: e.detail.value, errorField: '', errorText: '' });
    },
    onReason(e: WechatMiniprogram.Input) {
      this.setData({ reason: e.detail.value, errorField: '', errorText: '' });
    },
    onContact(e: WechatMiniprogram.Input) {
      this.setData({ contact: e.detail.value, errorField: '', errorText: '' });
    },
    onFillAll() {
      this.setData({ amount: this.data.refundableYuan, errorField: '', errorText: '' });
    },

    async onSubmit() {
      if (this.data.submitting || !this.data.loaded) return;
      const { amount, reason, contact } = this.data;
      const check = checkRefundForm(this.data.orderId, { amount, reason, contact }, this.data.refundableFee);
      if (!check.ok) {
        this.setData({ errorField: check.field, errorText: check.message });
        return;
      }
      const e = check.event;
      const submission = submissionFor(this.data.submission, [e.orderId, e.refundFee, e.reason, e.contact]);
      // The prompt only opens before the tap's first await; the application goes on whatever the answer.
      const subscribing = askSubscribe(this.data.noticeOffers);
      // setData is synchronous on this.data: a second tap now sees submitting and stops above.
      this.setData({ submitting: true, submission, errorField: '', errorText: '' });
      const choice = await subscribing;
      this.setData({ subscribeNote: choiceNote(choice) });
      try {
        await api.applyRefund({ ...e, requestId: submission.requestId });
        const told = choice.accepted.length > 0 ? '，结果将以服务通知告知' : '';
        wx.showToast({ title: `已提交，等待商家审核${told}`, icon: 'none' });
        wx.navigateBack();
      } catch (err) {
        const message = userMessageOf(err);
        this.setData({ errorText: message });
        wx.showModal({ title: '提交失败', content: message, showCancel: false });
        // Another refund was reserved meanwhile: show the amount that is really left.
        if (err instanceof CallError && err.code === 'REFUND_EXCEEDS_PAID') void this.loadOrder();
      } finally {
        this.setData({ submitting: false });
      }
    },
  },
});
