import { handleRefundNotify } from '../shared/domain/notify';
import { notifyFunction } from '../shared/runtime/function';
import { subscribeSender } from '../shared/runtime/subscribe';

export const main = notifyFunction(
  'refundNotify',
  { wxpay: true, notices: ['refund_attention', 'refund_completed', 'refund_closed'] },
  handleRefundNotify,
  { sendNotices: subscribeSender },
);
