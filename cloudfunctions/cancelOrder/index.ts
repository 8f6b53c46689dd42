import { cancelOrder } from '../shared/domain/cancel';
import { callableFunction } from '../shared/runtime/function';

// closeorder can answer ORDERPAID, and the payment is then booked here: its notice is written
// for reconcile to send, as createOrder's is.
export const main = callableFunction(
  'cancelOrder',
  { wxpay: true, calls: true, notices: ['order_paid'] },
  cancelOrder,
);
