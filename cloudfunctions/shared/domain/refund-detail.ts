/**
 * One refund by its id (getRefund): for the merchant's detail page opened from a link or a
 * notice, and for the shopper's own. An admin sees every reason and the history; the shopper
 * sees the label and the times, never WeChat's reasons (refundView).
 */
import type { GetRefundResult } from '../contract';
import { AppError } from '../errors';
import type { Caller } from '../runtime/callable';
import type { Deps } from './deps';
import { COLLECTIONS, type OrderDoc, orderView, refundView } from './model';
import { requireOwnApp } from './orders';
import { getRefund } from './refund-steps';
import { ID_PATTERN, onlyFields, requiredString, requireOpenid } from './validate';
import { ownRefund } from './withdraw';

export async function refundDetail(
  deps: Deps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<GetRefundResult> {
  const openid = requireOpenid(caller);
  onlyFields(event, ['refundId']);
  const refundId = requiredString(event, 'refundId', { max: 64, pattern: ID_PATTERN });
  const admin = deps.config.adminOpenids.has(openid);
  let refund: Awaited<ReturnType<typeof getRefund>>;
  if (admin) {
    refund = await getRefund(deps, refundId);
    if (!refund) throw new AppError('NOT_FOUND', 'refund not found');
  } else {
    requireOwnApp(deps, caller);
    refund = await ownRefund(deps, refundId, openid);
  }
  const order = await deps.store.get<OrderDoc>(COLLECTIONS.orders, refund.orderId);
  // A refund is created only after its order's reservation: an order missing is broken data.
  if (!order) throw new AppError('INTERNAL', `order ${refund.orderId} of refund ${refundId} is missing`);
  return { refund: refundView(refund, admin), order: orderView(order, deps.now()) };
}
