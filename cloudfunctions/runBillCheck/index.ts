import { runBillCheck } from '../shared/domain/billcheck';
import { withBills } from '../shared/runtime/bills';
import { callableFunction } from '../shared/runtime/function';
import { subscribeSender } from '../shared/runtime/subscribe';

export const main = callableFunction(
  'runBillCheck',
  {
    wxpay: true,
    calls: true,
    notices: ['bill_mismatch', 'order_paid', 'refund_attention', 'refund_completed', 'refund_closed'],
  },
  (deps, event, caller) => runBillCheck(withBills(deps), event, caller),
  { sendNotices: subscribeSender },
);
