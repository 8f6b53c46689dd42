import { createOrder } from '../shared/domain/orders';
import { callableFunction } from '../shared/runtime/function';

// Finds a payment only on "pay again" for an order WeChat says is paid: that notice is written
// for reconcile to send, so this function needs no permission to send.
export const main = callableFunction(
  'createOrder',
  { wxpay: true, calls: true, notices: ['order_paid'] },
  createOrder,
);
