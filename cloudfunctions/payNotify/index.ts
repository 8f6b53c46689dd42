import { handlePayNotify } from '../shared/domain/notify';
import { notifyFunction } from '../shared/runtime/function';

export const main = notifyFunction('payNotify', { wxpay: true }, handlePayNotify);
