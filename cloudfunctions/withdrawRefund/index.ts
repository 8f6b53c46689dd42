import { withdrawRefund } from '../shared/domain/withdraw';
import { callableFunction } from '../shared/runtime/function';

export const main = callableFunction('withdrawRefund', { appid: true }, withdrawRefund);
