import type { OrderView } from '../../cloudfunctions/shared/contract';

export type PaymentReturn = 'ok' | 'cancel' | 'fail';

/**
 * What wx.requestPayment reported. Its answer is never the payment result: only the server
 * (pay notify or orderquery) knows whether money moved, so every branch ends with queryOrder.
 * 'requestPayment:fail cancel' is the documented cancel; some old clients sent 'requestPayment:cancel'.
 */
export function classifyPaymentReturn(errMsg: string | undefined): PaymentReturn {
  if (errMsg === 'requestPayment:ok') return 'ok';
  if (errMsg && /^requestPayment:(fail )?cancel/.test(errMsg)) return 'cancel';
  return 'fail';
}

export type PayOutcome = 'paid' | 'cancelled' | 'failed' | 'pending' | 'unknown';

/** The server's order status wins over what the cashier said (e.g. paid but the client timed out). */
export function payOutcome(ret: PaymentReturn, order: OrderView | null): PayOutcome {
  if (!order) return 'unknown';
  if (order.status === 'PAID') return 'paid';
  if (ret === 'ok') return 'pending';
  return ret === 'cancel' ? 'cancelled' : 'failed';
}

export const PAY_OUTCOME_MESSAGE: Record<PayOutcome, { title: string; content: string }> = {
  paid: { title: '支付成功', content: '订单已支付' },
  cancelled: { title: '已取消支付', content: '订单已保留，可在订单详情中继续支付' },
  failed: { title: '支付失败', content: '支付未完成，可在订单详情中重新支付' },
  pending: { title: '支付结果确认中', content: '微信支付正在确认，请稍后在订单详情中查看' },
  unknown: { title: '暂未确认支付结果', content: '请稍后在我的订单中查看支付状态' },
};
