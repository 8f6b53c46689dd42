import { reconcile } from '../shared/domain/reconcile';
import { timerFunction } from '../shared/runtime/function';

export const main = timerFunction('reconcile', { wxpay: true, cert: true, calls: true }, (deps) =>
  reconcile(deps),
);
