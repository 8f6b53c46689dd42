import { queryOrder } from '../shared/domain/orders';
import { callableFunction } from '../shared/runtime/function';

export const main = callableFunction('queryOrder', { wxpay: true, calls: true }, queryOrder);
