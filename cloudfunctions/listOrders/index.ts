import { listOrders } from '../shared/domain/orders';
import { callableFunction } from '../shared/runtime/function';

export const main = callableFunction('listOrders', {}, listOrders, { limit: 'reads' });
