import { queryOrder } from '../shared/domain/orders';
import { callableFunction } from '../shared/runtime/function';
import { subscribeSender } from '../shared/runtime/subscribe';

export const main = callableFunction(
  'queryOrder',
  { wxpay: true, calls: true, notices: ['order_paid'] },
  queryOrder,
  { sendNotices: subscribeSender },
);
