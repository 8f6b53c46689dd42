/**
 * The shopper cancels an unpaid order (cancelOrder).
 *
 *   cancel ─ CAS NOTPAY, not cancelled → cancelledAtMs ─┬─ no prepay_id: close here        → CLOSED
 *                                                       ├─ ≥ 5 min old: closeorder, close  → CLOSED
 *                                                       ├─ < 5 min old: reconcile closes it at
 *                                                       │  createdAt + 5 min               → CLOSING
 *                                                       └─ closeorder says ORDERPAID: query → PAID
 *
 * The order stops being payable at the cancel's write (createOrder {orderId} refuses it, the
 * view says payable: false), but WeChat still holds the prepay_id until closeorder: "订单生成后
 * 不能马上调用关单接口，最短调用时间间隔为5分钟". Money that lands in between is never lost: a
 * pay notify or orderquery still moves the order to PAID, and one that arrives after the
 * local close is booked CLOSED → PAID and flagged PAID_AFTER_CLOSE (markPaid).
 */
import type { CancelOrderResult } from '../contract';
import type { Caller } from '../runtime/callable';
import { type Deps, wxFailure } from './deps';
import { COLLECTIONS, type OrderDoc, orderView } from './model';
import { CLOSE_MIN_AGE_MS, expireOrder, ownOrder, requireOwnApp } from './orders';
import { ID_PATTERN, onlyFields, requiredString, requireOpenid } from './validate';

export async function cancelOrder(
  deps: Deps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<CancelOrderResult> {
  const openid = requireOpenid(caller);
  requireOwnApp(deps, caller);
  onlyFields(event, ['orderId']);
  const orderId = requiredString(event, 'orderId', { max: 32, pattern: ID_PATTERN });
  const { store } = deps;
  let order = await ownOrder(deps, orderId, openid);
  if (order.status === 'NOTPAY' && order.cancelledAtMs === undefined) {
    const now = deps.now();
    // Reconcile looks again when WeChat first allows the close, and not before: an earlier
    // look would only meet the 5-minute rule.
    const closableAtMs = order.createdAtMs + Math.round(CLOSE_MIN_AGE_MS * deps.config.timeScale);
    const patch = { cancelledAtMs: now, updatedAtMs: now, nextCheckAtMs: Math.max(now, closableAtMs) };
    // The one write that makes it unpayable. A pay notify racing it wins or loses by the same
    // status condition: if it landed first this CAS fails and the order is shown PAID.
    if (
      await store.cas(
        COLLECTIONS.orders,
        { _id: orderId, status: 'NOTPAY', cancelledAtMs: store.cmd.exists(false) },
        patch,
      )
    ) {
      order = { ...order, ...patch };
      deps.log('info', 'order.cancelled', { orderId, dbRequests: store.requests });
    } else {
      // Stryker disable next-line LogicalOperator: the order is read again after the close below, which the winner's status makes a no-op.
      order = (await store.get<OrderDoc>(COLLECTIONS.orders, orderId)) ?? order;
    }
  }
  if (order.status === 'NOTPAY') {
    // Also a repeat of an earlier cancel whose close is still owed: try again now.
    try {
      await expireOrder(deps, order);
    } catch (e) {
      // WeChat unreachable: the order is already unpayable here; reconcile finishes the close.
      if (!wxFailure(e)) throw e;
      // Stryker disable next-line OptionalChaining: wxFailure(e) is defined here (checked on the line above).
      deps.log('warn', 'order.cancel_close_deferred', { orderId, code: wxFailure(e)?.code });
    }
    order = (await store.get<OrderDoc>(COLLECTIONS.orders, orderId)) ?? order;
  }
  const outcome = order.status === 'PAID' ? 'PAID' : order.status === 'CLOSED' ? 'CLOSED' : 'CLOSING';
  return { order: orderView(order, deps.now()), outcome };
}
