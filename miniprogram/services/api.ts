/**
 * The only place that talks to the cloud functions and to the WeChat cashier.
 * Every call resolves to the function's `data` or throws a CallError whose `userMessage`
 * is ready to show (the envelope of docs/ARCHITECTURE.md §6).
 */
import type {
  CreateOrderEvent,
  FunctionMap,
  FunctionName,
  OrderView,
  RequestPaymentParams,
} from '../../cloudfunctions/shared/contract';
import { networkError, unwrapResult } from '../utils/errors';
import { classifyPaymentReturn, type PaymentReturn, type PayOutcome, payOutcome } from '../utils/payment';

export async function call<N extends FunctionName>(
  name: N,
  data: FunctionMap[N][0],
): Promise<FunctionMap[N][1]> {
  let res: ICloud.CallFunctionResult;
  try {
    res = await wx.cloud.callFunction({ name, data });
  } catch (err) {
    throw networkError(name, err);
  }
  return unwrapResult<FunctionMap[N][1]>(name, res.result);
}

/** One typed function per callable, so pages read like the contract. */
export const api = {
  listProducts: (e: FunctionMap['listProducts'][0]) => call('listProducts', e),
  whoami: () => call('whoami', {}),
  createOrder: (e: FunctionMap['createOrder'][0]) => call('createOrder', e),
  queryOrder: (e: FunctionMap['queryOrder'][0]) => call('queryOrder', e),
  listOrders: (e: FunctionMap['listOrders'][0]) => call('listOrders', e),
  applyRefund: (e: FunctionMap['applyRefund'][0]) => call('applyRefund', e),
  approveRefund: (e: FunctionMap['approveRefund'][0]) => call('approveRefund', e),
  listRefunds: (e: FunctionMap['listRefunds'][0]) => call('listRefunds', e),
  getRefund: (e: FunctionMap['getRefund'][0]) => call('getRefund', e),
  withdrawRefund: (e: FunctionMap['withdrawRefund'][0]) => call('withdrawRefund', e),
  cancelOrder: (e: FunctionMap['cancelOrder'][0]) => call('cancelOrder', e),
  refundReasons: () => call('refundReasons', {}),
  noticeTemplates: () => call('noticeTemplates', {}),
  listBillChecks: (e: FunctionMap['listBillChecks'][0]) => call('listBillChecks', e),
  runBillCheck: (e: FunctionMap['runBillCheck'][0]) => call('runBillCheck', e),
};

/** Opens the cashier with exactly the server's parameters; never rejects. */
export function requestPayment(payment: RequestPaymentParams): Promise<PaymentReturn> {
  return new Promise((resolve) => {
    wx.requestPayment({
      ...payment,
      success: () => resolve('ok'),
      fail: (res) => resolve(classifyPaymentReturn(res.errMsg)),
    });
  });
}

export interface PayResult {
  orderId: string;
  /** From the server, the amount actually charged. */
  totalFee: number;
  outcome: PayOutcome;
  /** The order as queryOrder confirmed it; null when that confirmation failed. */
  order: OrderView | null;
}

/**
 * When the cashier said ok but the order is not PAID yet (the pay notify is on its way, or
 * orderquery has not seen it), queryOrder is asked again after these waits before the
 * shopper is told the result is still being confirmed.
 */
export const PAY_CONFIRM_WAITS_MS = [500, 1000, 2000];

export interface PayOptions {
  onCreated?: (created: { orderId: string; totalFee: number }) => void;
  sleep?: (ms: number) => Promise<void>;
  waitsMs?: readonly number[];
}

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * createOrder → wx.requestPayment → queryOrder, for a new cart or `{orderId}` (pay again).
 * queryOrder runs whatever the cashier said: the server asks WeChat (orderquery) when the
 * notify has not arrived yet, so a paid order is seen as paid even if the client timed out.
 * Throws CallError only when createOrder fails (nothing was charged then).
 */
export async function payOrder(event: CreateOrderEvent, options: PayOptions = {}): Promise<PayResult> {
  const created = await api.createOrder(event);
  options.onCreated?.({ orderId: created.orderId, totalFee: created.totalFee });
  const ret = await requestPayment(created.payment);
  const query = async (): Promise<OrderView | null> => {
    try {
      return (await api.queryOrder({ orderId: created.orderId })).order;
    } catch (err) {
      console.warn('queryOrder after payment failed', err);
      return null;
    }
  };
  let order = await query();
  if (ret === 'ok') {
    // The cashier's ok is no proof, but it says money is likely on its way: look a few more times.
    for (const ms of options.waitsMs ?? PAY_CONFIRM_WAITS_MS) {
      if (order?.status === 'PAID') break;
      await (options.sleep ?? wait)(ms);
      order = (await query()) ?? order;
    }
  }
  return { orderId: created.orderId, totalFee: created.totalFee, outcome: payOutcome(ret, order), order };
}
