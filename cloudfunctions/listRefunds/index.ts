import { listRefunds } from '../shared/domain/refunds';
import { callableFunction } from '../shared/runtime/function';

export const main = callableFunction('listRefunds', {}, listRefunds, { limit: 'reads', adminOnly: true });
