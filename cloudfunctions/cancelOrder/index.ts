import { cancelOrder } from '../shared/domain/cancel';
import { callableFunction } from '../shared/runtime/function';

export const main = callableFunction('cancelOrder', { wxpay: true, calls: true }, cancelOrder);
