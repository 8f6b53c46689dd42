import { createOrder } from '../shared/domain/orders';
import { callableFunction } from '../shared/runtime/function';

export const main = callableFunction('createOrder', { wxpay: true, calls: true }, createOrder);
