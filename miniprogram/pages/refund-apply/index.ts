import type { NoticeTemplateOffer, RefundReasonOption } from '../../../cloudfunctions/shared/contract';
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
    refundableYuan: '',
    totalYuan: '',
    /** The shop's preset reasons (refundReasons). */
    reasons: [] as RefundReasonOption[],
    /** Order and reasons are in: amounts and the form can be shown. */
    loaded: false,
    loading: false,
    /** Loading the order or the reasons failed: the page offers to try again. */
    loadError: '',
    amount: '',
    reasonCode: '',
    /** The picked reason asks the shopper to say more (其他). */
    noteRequired: false,
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
      void this.loadForm();
      void loadNoticeTemplates().then((t) => this.setData({ noticeOffers: t.shopper }));
    },

    /**
     * The order's refundable rest and the preset reasons, together. The amount starts at the
     * whole rest (what a shopper most often wants); nothing shows an amount until it is known.
     */
    async loadForm() {
      if (this.data.loading) return;
      this.setData({ loading: true, loadError: '' });
      try {
        const [{ order }, reasons] = await Promise.all([
          api.queryOrder({ orderId: this.data.orderId }),
          this.data.reasons.length > 0 ? Promise.resolve({ apply: this.data.reasons }) : api.refundReasons(),
        ]);
        const refundableYuan = fenToYuan(order.refundableFee);
        const first = !this.data.loaded;
        this.setData({
          refundableFee: order.refundableFee,
          refundableYuan,
          totalYuan: fenToYuan(order.totalFee),
          reasons: reasons.apply,
          loaded: true,
          // A reload (after a refusal) keeps what the shopper typed.
          ...(first || this.data.amount === ''
            ? { amount: order.refundableFee > 0 ? refundableYuan : '' }
            : {}),
        });
      } catch (err) {
        this.setData({ loadError: userMessageOf(err) });
      } finally {
        this.setData({ loading: false });
      }
    },

    onRetryLoad() {
      void this.loadForm();
    },

    onAmount(e: WechatMiniprogram.Input) {
      this.setData({ amount: e.detail.value, errorField: '', errorText: '' });
    },
    onPickReason(e: WechatMiniprogram.TouchEvent<object, object, { code: string }>) {
      const code = e.currentTarget.dataset.code;
      const picked = this.data.reasons.find((r) => r.code === code);
      if (!picked) return;
      this.setData({ reasonCode: code, noteRequired: picked.noteRequired, errorField: '', errorText: '' });
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
      const { amount, reasonCode, reason, contact } = this.data;
      const check = checkRefundForm(
        this.data.orderId,
        { amount, reasonCode, reason, contact },
        this.data.refundableFee,
        this.data.reasons,
      );
      if (!check.ok) {
        this.setData({ errorField: check.field, errorText: check.message });
        return;
      }
      const e = check.event;
      const submission = submissionFor(this.data.submission, [
        e.orderId,
        e.refundFee,
        e.reasonCode,
        e.reason,
        e.contact,
      ]);
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
        if (err instanceof CallError && err.code === 'REFUND_EXCEEDS_PAID') void this.loadForm();
      } finally {
        this.setData({ submitting: false });
      }
    },
  },
});
