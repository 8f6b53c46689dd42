import { scheduledBillCheck } from '../shared/domain/billcheck';
import { withBills } from '../shared/runtime/bills';
import { timerFunction } from '../shared/runtime/function';

export const main = timerFunction('billCheck', { wxpay: true, calls: true }, (deps) =>
  scheduledBillCheck(withBills(deps)),
);
