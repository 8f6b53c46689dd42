import { listProducts } from '../shared/domain/products';
import { callableFunction } from '../shared/runtime/function';

export const main = callableFunction('listProducts', {}, listProducts, { limit: 'reads' });
