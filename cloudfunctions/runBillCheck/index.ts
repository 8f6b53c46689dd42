import { runBillCheck } from '../shared/domain/billcheck';
import { withBills } from '../shared/runtime/bills';
import { callableFunction } from '../shared/runtime/function';

export const main = callableFunction('runBillCheck', { wxpay: true, calls: true }, (deps, event, caller) =>
  runBillCheck(withBills(deps), event, caller),
);
