import { reconcile } from '../shared/domain/reconcile';
import { timerFunction } from '../shared/runtime/function';
import { subscribeSender } from '../shared/runtime/subscribe';

// The notices reconcile's own transitions send, which are also every kind another function
// leaves for it to render (approveRefund's outcomes).
export const main = timerFunction(
  'reconcile',
  {
    wxpay: true,
    cert: true,
    calls: true,
    notices: ['order_paid', 'refund_attention', 'refund_completed', 'refund_closed'],
  },
  (deps) => reconcile(deps),
  { sendNotices: subscribeSender },
);
