import { refundDetail } from '../shared/domain/refund-detail';
import { callableFunction } from '../shared/runtime/function';

export const main = callableFunction('getRefund', { appid: true }, refundDetail, { limit: 'reads' });
