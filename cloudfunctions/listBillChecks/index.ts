import { listBillChecks } from '../shared/domain/billcheck';
import { callableFunction } from '../shared/runtime/function';

export const main = callableFunction('listBillChecks', {}, listBillChecks, {
  limit: 'reads',
  adminOnly: true,
});
