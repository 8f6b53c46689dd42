import { reconcile } from '../shared/domain/reconcile';
import { timerFunction } from '../shared/runtime/function';

export const main = timerFunction('reconcile', { wxpay: true, cert: true }, (deps) =>
  reconcile(deps, deps.config.reconcile),
);
