import { applyRefund } from '../shared/domain/refunds';
import { callableFunction } from '../shared/runtime/function';

export const main = callableFunction('applyRefund', { appid: true }, applyRefund, { limit: 'applyRefund' });
