import { approveRefund } from '../shared/domain/refunds';
import { callableFunction } from '../shared/runtime/function';

export const main = callableFunction(
  'approveRefund',
  { wxpay: true, cert: true, calls: true },
  approveRefund,
);
