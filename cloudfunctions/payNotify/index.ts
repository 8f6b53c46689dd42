import { handlePayNotify } from '../shared/domain/notify';
import { notifyFunction } from '../shared/runtime/function';
import { subscribeSender } from '../shared/runtime/subscribe';

export const main = notifyFunction('payNotify', { wxpay: true, notices: ['order_paid'] }, handlePayNotify, {
  sendNotices: subscribeSender,
});
