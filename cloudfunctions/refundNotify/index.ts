import { handleRefundNotify } from '../shared/domain/notify';
import { notifyFunction } from '../shared/runtime/function';

export const main = notifyFunction('refundNotify', { wxpay: true }, handleRefundNotify);
