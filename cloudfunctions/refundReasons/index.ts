import { refundReasons } from '../shared/domain/reasons';
import { callableFunction } from '../shared/runtime/function';

export const main = callableFunction('refundReasons', {}, refundReasons);
