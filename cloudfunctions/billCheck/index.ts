import { scheduledBillCheck } from '../shared/domain/billcheck';
import { withBills } from '../shared/runtime/bills';
import { timerFunction } from '../shared/runtime/function';
import { subscribeSender } from '../shared/runtime/subscribe';

export const main = timerFunction(
  'billCheck',
  {
    wxpay: true,
    calls: true,
    notices: ['bill_mismatch', 'order_paid', 'refund_attention', 'refund_completed', 'refund_closed'],
  },
  (deps) => scheduledBillCheck(withBills(deps)),
  { sendNotices: subscribeSender },
);
