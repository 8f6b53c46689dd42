/**
 * The sandbox merchant's subscribe message templates: what a merchant would pick in the
 * mini-program admin console (公共模板库), here given to the CloudBase emulator (titles and
 * fields, to check and render what is sent) and to the functions (the NOTICE_* variables).
 * docs/GOING_LIVE.md §9 explains how to pick the real ones.
 */
import type { SubscribeTemplate } from './tcb/subscribe';

/** Template ids in the admin console are 43 characters of base64url. */
const id = (name: string) => `sbx_${name}_`.padEnd(43, '0');

export const DEMO_TEMPLATE_IDS = {
  newOrder: id('new_order'),
  refundApplied: id('refund_applied'),
  refundAttention: id('refund_attention'),
  billMismatch: id('bill_mismatch'),
  refundReview: id('refund_review'),
  refundResult: id('refund_result'),
} as const;

export const DEMO_SUBSCRIBE_TEMPLATES: SubscribeTemplate[] = [
  {
    id: DEMO_TEMPLATE_IDS.newOrder,
    title: '新订单通知',
    keywords: [
      { key: 'character_string1', name: '订单编号' },
      { key: 'thing2', name: '商品名称' },
      { key: 'amount3', name: '订单金额' },
      { key: 'time4', name: '支付时间' },
    ],
  },
  {
    id: DEMO_TEMPLATE_IDS.refundApplied,
    title: '退款申请通知',
    keywords: [
      { key: 'character_string1', name: '订单编号' },
      { key: 'amount2', name: '退款金额' },
      { key: 'thing3', name: '退款原因' },
      { key: 'time4', name: '申请时间' },
    ],
  },
  {
    id: DEMO_TEMPLATE_IDS.refundAttention,
    title: '退款异常提醒',
    keywords: [
      { key: 'character_string1', name: '退款单号' },
      { key: 'amount2', name: '退款金额' },
      { key: 'phrase3', name: '退款状态' },
      { key: 'thing4', name: '异常原因' },
      { key: 'time5', name: '发生时间' },
    ],
  },
  {
    id: DEMO_TEMPLATE_IDS.billMismatch,
    title: '对账异常提醒',
    keywords: [
      { key: 'date1', name: '对账日期' },
      { key: 'number2', name: '差异笔数' },
      { key: 'thing3', name: '处理建议' },
    ],
  },
  {
    id: DEMO_TEMPLATE_IDS.refundReview,
    title: '退款审核结果通知',
    keywords: [
      { key: 'character_string1', name: '订单编号' },
      { key: 'amount2', name: '退款金额' },
      { key: 'phrase3', name: '审核结果' },
      { key: 'thing4', name: '备注' },
      { key: 'time5', name: '审核时间' },
    ],
  },
  {
    id: DEMO_TEMPLATE_IDS.refundResult,
    title: '退款结果通知',
    keywords: [
      { key: 'character_string1', name: '订单编号' },
      { key: 'amount2', name: '退款金额' },
      { key: 'phrase3', name: '退款状态' },
      { key: 'thing4', name: '说明' },
      { key: 'time5', name: '到账时间' },
    ],
  },
];

/** The NOTICE_* variables that map each notice onto the templates above. */
export function demoNoticeEnv(): Record<string, string> {
  const t = DEMO_TEMPLATE_IDS;
  return {
    NOTICE_ORDER_PAID: `${t.newOrder} character_string1=orderId thing2=product amount3=amount time4=time`,
    NOTICE_REFUND_APPLIED: `${t.refundApplied} character_string1=orderId amount2=amount thing3=reason time4=time`,
    NOTICE_REFUND_ATTENTION: `${t.refundAttention} character_string1=refundId amount2=amount phrase3=status thing4=detail time5=time`,
    NOTICE_BILL_MISMATCH: `${t.billMismatch} date1=date number2=count thing3=note`,
    NOTICE_REFUND_APPROVED: `${t.refundReview} character_string1=orderId amount2=amount phrase3=status thing4=note time5=time`,
    NOTICE_REFUND_REJECTED: `${t.refundReview} character_string1=orderId amount2=amount phrase3=status thing4=comment time5=time`,
    NOTICE_REFUND_COMPLETED: `${t.refundResult} character_string1=orderId amount2=amount phrase3=status thing4=note time5=time`,
    NOTICE_REFUND_CLOSED: `${t.refundResult} character_string1=orderId amount2=amount phrase3=status thing4=note time5=time`,
    NOTICE_MINIPROGRAM_STATE: 'developer',
  };
}
