import { approveRefund } from '../shared/domain/refunds';
import { callableFunction } from '../shared/runtime/function';
import { subscribeSender } from '../shared/runtime/subscribe';

// Only the review's own notices: with the merchant certificate, SCF's 4 KB of variables has no
// room for every template. A refund this call sees fail, close or complete is told by reconcile.
export const main = callableFunction(
  'approveRefund',
  { wxpay: true, cert: true, calls: true, notices: ['refund_approved', 'refund_rejected'] },
  approveRefund,
  { sendNotices: subscribeSender },
);
