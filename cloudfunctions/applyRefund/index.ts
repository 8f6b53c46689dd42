import { applyRefund } from '../shared/domain/refunds';
import { callableFunction } from '../shared/runtime/function';
import { subscribeSender } from '../shared/runtime/subscribe';

export const main = callableFunction(
  'applyRefund',
  { appid: true, notices: ['refund_applied'] },
  applyRefund,
  { limit: 'applyRefund', sendNotices: subscribeSender },
);
