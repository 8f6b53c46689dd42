import type {
  CreateOrderResult,
  ListOrdersResult,
  OrderItemView,
  OrderStatus,
  QueryOrderResult,
  RequestPaymentParams,
} from '../contract';
import { AppError } from '../errors';
import { tellOrderPaid } from '../notices/transitions';
import type { PaymentStatus, PreparedPayment, TradeRecord } from '../providers/port';
import type { Caller } from '../runtime/callable';
import { type Deps, providerOf, requireWxpay, wxFailure } from './deps';
import { recordEvent } from './events';
import {
  admitCall,
  admitNewOrder,
  cartKey,
  forgetOrder,
  type OpenOrderEntry,
  ORDER_INSERT_GRACE_MS,
  rateLimited,
  tryAdmitCall,
} from './limits';
import {
  COLLECTIONS,
  isPayable,
  type OrderDoc,
  orderView,
  PREPAY_MARGIN_MS,
  PREPAY_TTL_MS,
  type ProductDoc,
  type RefundDoc,
  refundView,
} from './model';
import {
  beijingTime,
  ID_PATTERN,
  integer,
  invalid,
  newestFirstPage,
  oneOf,
  onlyFields,
  requiredString,
  requireOpenid,
} from './validate';

const MAX_LINES = 20;
const MAX_QUANTITY = 99;
/** One million yuan: far above any shop basket, far below integer trouble. */
const MAX_TOTAL_FEE = 100_000_000;
/**
 * WeChat: "订单生成后不能马上调用关单接口，最短调用时间间隔为5分钟" (APIv2 and cloudPay; APIv3
 * advises the same). Each provider says its own as `capabilities.minCloseAgeMs`.
 */
export const CLOSE_MIN_AGE_MS = 5 * 60_000;
/** queryOrder waits this long for orderquery before showing the stored order: a shopper is watching. */
const QUERY_WAIT_MS = 5_000;

export const ORDER_STATUSES: readonly OrderStatus[] = ['NOTPAY', 'PAID', 'CLOSED'];

function notPayable(message: string): AppError {
  return new AppError('ORDER_NOT_PAYABLE', message);
}

function parseItems(raw: unknown): { productId: string; quantity: number }[] {
  if (!Array.isArray(raw) || raw.length === 0) throw invalid('items must be a non-empty list');
  if (raw.length > MAX_LINES) throw invalid(`at most ${MAX_LINES} different products per order`);
  const seen = new Set<string>();
  return raw.map((line, i) => {
    if (typeof line !== 'object' || line === null || Array.isArray(line))
      throw invalid(`items[${i}] must be an object`);
    const l = line as Record<string, unknown>;
    onlyFields(l, ['productId', 'quantity']);
    const productId = requiredString(l, 'productId', { max: 64, pattern: ID_PATTERN });
    const quantity = integer(l, 'quantity', 1, MAX_QUANTITY);
    if (seen.has(productId)) throw invalid(`product ${productId} is listed twice`);
    seen.add(productId);
    return { productId, quantity };
  });
}

/** WeChat shows `body` in the cashier; keep it short (limit 128) and free of odd characters. */
function describe(shopName: string, items: OrderItemView[]): string {
  const first = items[0]!.name;
  const more = items.length > 1 ? `等${items.length}件` : '';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is stripped.
  const text = `${shopName}-${first}${more}`.replace(/[\u0000-\u001f<>&]/g, '');
  // Cut by code point, so an emoji is never split into a lone surrogate.
  return Array.from(text).slice(0, 40).join('');
}

/** APIv2 orders repeat the sign type they were first placed with; the others sign their own way. */
function v2SignType(order: OrderDoc): 'MD5' | 'HMAC-SHA256' | undefined {
  return order.signType === 'MD5' || order.signType === 'HMAC-SHA256' ? order.signType : undefined;
}

/** wx.requestPayment parameters for the order's stored prepay_id, signed anew (APIv2, APIv3). */
function signPayment(deps: Deps, order: OrderDoc): RequestPaymentParams {
  return providerOf(deps, order).resignPayment(order.prepayId ?? '', v2SignType(order));
}

/**
 * The caller must be a user of the mini-program bound to the merchant account: an openid of
 * another appid (a shared cloud environment) cannot pay or be refunded through this one.
 */
export function requireOwnApp(deps: Deps, caller: Caller): void {
  // A service provider's sub-merchant with its own mini-program (WXPAY_SUB_APPID): its users.
  const own = deps.config.providers.partner?.subAppid ?? deps.config.wxpay.appid;
  if (caller.appid !== own) {
    throw new AppError('FORBIDDEN', 'this mini-program is not the one bound to the merchant account');
  }
}

export async function createOrder(
  deps: Deps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<CreateOrderResult> {
  const openid = requireOpenid(caller);
  requireOwnApp(deps, caller);
  if ('orderId' in event) {
    onlyFields(event, ['orderId']);
    return payAgain(deps, requiredString(event, 'orderId', { max: 32, pattern: ID_PATTERN }), openid);
  }
  onlyFields(event, ['items']);
  const lines = parseItems(event['items']);
  const now = deps.now();
  // out_trade_no: ≤32 of [0-9A-Za-z_-|*], unique per merchant. Time first keeps ids sortable.
  const orderId = `${beijingTime(now)}${deps.random(12)}`;
  const expiresAtMs = now + deps.config.orderExpireMs;
  // The limits come first: a refused call costs no product read, no order and no WeChat call.
  const cart = cartKey(lines);
  const [requestsBefore, waitedBefore] = [deps.store.requests, deps.store.waitMs];
  let admission = await admitNewOrder(deps, openid, { orderId, cart, untilMs: expiresAtMs });
  // What the limits cost this call, in the log line below (and in `npm run bench`).
  const limits = {
    dbRequests: deps.store.requests - requestsBefore,
    dbMs: deps.store.waitMs - waitedBefore,
  };
  if (admission.kind === 'same') {
    // A repeated cart is a call like any other.
    await admitCall(deps, openid, 'createOrder');
    for (let attempt = 0; admission.kind === 'same'; attempt++) {
      const again = await sameCartOrder(deps, admission.entry, openid);
      if (again) return again;
      // Its order ended (paid, closed, expired) or never came: the cart is a new order.
      await forgetOrder(deps, openid, admission.entry.id);
      if (attempt === 2) throw new AppError('CONFLICT', 'the same cart keeps changing, please try again');
      admission = await admitNewOrder(deps, openid, { orderId, cart, untilMs: expiresAtMs });
    }
  }
  let order: OrderDoc;
  try {
    order = await placeOrder(deps, caller, openid, orderId, lines, now, expiresAtMs);
  } catch (e) {
    // The call still counts against the per-minute limit; the place it took does not.
    await forgetOrder(deps, openid, orderId).catch(() => undefined);
    throw e;
  }
  deps.log('info', 'order.created', {
    orderId,
    totalFee: order.totalFee,
    provider: order.provider,
    dbRequests: deps.store.requests,
    limits,
  });
  const { payment } = await requestPrepay(deps, order);
  return { orderId: order._id, totalFee: order.totalFee, payment };
}

/** Prices the cart from the products collection and stores the order, before WeChat hears of it. */
async function placeOrder(
  deps: Deps,
  caller: Caller,
  openid: string,
  orderId: string,
  lines: { productId: string; quantity: number }[],
  now: number,
  expiresAtMs: number,
): Promise<OrderDoc> {
  const { store } = deps;
  const products = await store.find<ProductDoc>(
    COLLECTIONS.products,
    { _id: store.cmd.in(lines.map((l) => l.productId)) },
    // At most MAX_LINES ids match, under any page size the database uses by default.
    // Stryker disable next-line ObjectLiteral: equivalent, see above.
    { limit: MAX_LINES },
  );
  const byId = new Map(products.map((p) => [p._id, p]));
  const items: OrderItemView[] = lines.map((l) => {
    const p = byId.get(l.productId);
    // A price that is not a positive whole number of fen is bad catalogue data: never sell it.
    if (!p?.onSale || !Number.isSafeInteger(p.priceFen) || p.priceFen < 1) {
      throw invalid(`product ${l.productId} is not on sale`);
    }
    // Prices come from the products collection only (docs/ARCHITECTURE.md §3).
    return { productId: p._id, name: p.name, priceFen: p.priceFen, quantity: l.quantity };
  });
  const totalFee = items.reduce((sum, i) => sum + i.priceFen * i.quantity, 0);
  // Every price is a whole number of fen from 1 and every quantity from 1, so the total is at
  // least 1 fen, and a total past 2^53 (no longer exact) is far over the limit too.
  if (totalFee > MAX_TOTAL_FEE) {
    throw invalid('the order total is out of range');
  }
  // New orders go through WXPAY_PROVIDER; the order keeps it for good.
  const provider = requireWxpay(deps).current;
  const subMchId =
    provider.name === 'cloudpay' ? deps.config.wxpay.mchId : deps.config.providers.partner?.subMchId;
  const order: OrderDoc = {
    _id: orderId,
    openid,
    status: 'NOTPAY',
    items,
    totalFee,
    description: describe(deps.config.shopName, items),
    clientIp:
      caller.clientIp && /^[0-9a-fA-F.:]{3,45}$/.test(caller.clientIp) ? caller.clientIp : '127.0.0.1',
    provider: provider.name,
    signType: provider.capabilities.signType,
    ...(subMchId ? { subMchId } : {}),
    // cloudPay's callbacks go to a function, not a URL.
    ...(provider.capabilities.notifyTransport === 'http'
      ? { notifyUrl: deps.config.wxpay.payNotifyUrl }
      : {}),
    createdAtMs: now,
    updatedAtMs: now,
    expiresAtMs,
    prepayId: null,
    prepayExpiresAtMs: 0,
    // Reconcile asks orderquery if the notify has not come by then.
    nextCheckAtMs: now + deps.config.reconcile.notifyGraceMs,
    checkCount: 0,
    refundReservedFee: 0,
    refundedFee: 0,
    refundUsedFee: 0,
    refundCount: 0,
    refundOpenCount: 0,
    refundBook: {},
    refundCallUntilMs: 0,
  };
  // The order exists before WeChat hears of it, so a crash after unifiedorder leaves a
  // NOTPAY order that reconcile can query and close, never a payment with no order.
  if ((await store.insert(COLLECTIONS.orders, order)) === 'duplicate') {
    throw new AppError('CONFLICT', 'order number collision, please try again');
  }
  return order;
}

/** Waits between reads of an order another call is still creating (ms); ~3 s in all. */
const SAME_CART_POLL_MS = [50, 100, 200, 400, 800, 1600];

/**
 * The unpaid order an earlier call made for the same cart (a double tap on 去结算, a retried
 * call), payable again; null when that order ended or never came, so the cart is a new order.
 * The earlier call may still be storing it or asking WeChat for its prepay_id: it is read
 * again a few times rather than asking WeChat a second time for the same order.
 */
async function sameCartOrder(
  deps: Deps,
  entry: OpenOrderEntry,
  openid: string,
): Promise<CreateOrderResult | null> {
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let order: OrderDoc | null = null;
  for (const wait of [0, ...SAME_CART_POLL_MS]) {
    if (wait > 0) {
      if (deps.now() + wait > deps.budget.callDeadlineMs) break;
      await sleep(wait);
    }
    order = await deps.store.get<OrderDoc>(COLLECTIONS.orders, entry.id);
    if (order && (order.prepayId || !isPayable(order, deps.now()))) break;
  }
  const now = deps.now();
  if (!order) {
    if (now - entry.atMs >= ORDER_INSERT_GRACE_MS) return null;
    throw rateLimited('this cart is being ordered by another call right now; try again shortly', 2000);
  }
  if (order.openid !== openid || !isPayable(order, now)) return null;
  deps.log('info', 'order.same_cart', { orderId: order._id, dbRequests: deps.store.requests });
  const live = order.prepayId && order.prepayExpiresAtMs - PREPAY_MARGIN_MS > now;
  if (live && providerOf(deps, order).capabilities.canResignPayment) {
    return { orderId: order._id, totalFee: order.totalFee, payment: signPayment(deps, order) };
  }
  // The first call got no prepay_id (WeChat busy, or still waiting), or the provider signs only
  // through WeChat (cloudPay, whose re-entry gives back the same prepay_id): ask with the same
  // parameters.
  const { payment } = await requestPrepay(deps, order);
  return { orderId: order._id, totalFee: order.totalFee, payment };
}

/**
 * Paying again is never refused for the open-orders limit. Re-signing the stored prepay_id
 * costs one read and no WeChat call, so it is not counted either; only asking WeChat for a
 * new prepay_id counts as a createOrder call.
 */
async function payAgain(deps: Deps, orderId: string, openid: string): Promise<CreateOrderResult> {
  const order = await ownOrder(deps, orderId, openid);
  if (order.status === 'PAID') throw notPayable('the order is already paid');
  if (order.status === 'CLOSED') throw notPayable('the order is closed; place a new order');
  if (order.cancelledAtMs !== undefined) throw notPayable('the order was cancelled; place a new order');
  const now = deps.now();
  if (now >= order.expiresAtMs) {
    await expireOrder(deps, order);
    throw new AppError('ORDER_EXPIRED', 'the order has expired; place a new order');
  }
  const live = order.prepayId && order.prepayExpiresAtMs - PREPAY_MARGIN_MS > now;
  // cloudPay's paySign is the platform's: paying again re-enters the order there (same
  // out_trade_no, same parameters), which gives back the same prepay_id.
  if (live && providerOf(deps, order).capabilities.canResignPayment) {
    return { orderId: order._id, totalFee: order.totalFee, payment: signPayment(deps, order) };
  }
  await admitCall(deps, openid, 'createOrder');
  const { payment } = await requestPrepay(deps, order);
  return { orderId: order._id, totalFee: order.totalFee, payment };
}

/**
 * Places the order at WeChat through its own provider, with its stored parameters (re-entry
 * with the same ones is allowed), and returns what wx.requestPayment takes.
 */
async function requestPrepay(
  deps: Deps,
  order: OrderDoc,
): Promise<{ order: OrderDoc; payment: RequestPaymentParams }> {
  const provider = providerOf(deps, order);
  const signType = v2SignType(order);
  const notifyUrl =
    provider.capabilities.notifyTransport === 'http'
      ? (order.notifyUrl ?? deps.config.wxpay.payNotifyUrl)
      : undefined;
  let prepared: PreparedPayment;
  try {
    prepared = await provider.createPayment({
      outTradeNo: order._id,
      description: order.description,
      totalFen: order.totalFee,
      payerOpenid: order.openid,
      clientIp: order.clientIp,
      expiresAtMs: order.expiresAtMs,
      ...(notifyUrl ? { notifyUrl } : {}),
      // Re-entry must repeat the first request exactly, sign type included, even after the
      // merchant switched WXPAY_SIGN_TYPE: otherwise WeChat answers 201 商户订单号重复.
      ...(provider.name === 'v2' && signType ? { signType } : {}),
    });
  } catch (e) {
    const f = wxFailure(e);
    if (!f) throw e;
    deps.log('warn', 'order.unifiedorder_failed', {
      orderId: order._id,
      provider: provider.name,
      errCode: f.errCode,
      code: f.code,
    });
    if (f.reason === 'ORDER_PAID') {
      await confirmWithQuery(deps, order);
      throw notPayable('the order is already paid');
    }
    if (f.reason === 'ORDER_CLOSED') {
      await closeLocally(deps, order, 'ORDERCLOSED', 'unifiedorder');
      throw notPayable('the order is closed; place a new order');
    }
    // No answer, or "later": the same parameters may succeed on the next try.
    if (f.transient || f.rateLimited) {
      throw new AppError(
        'WXPAY_UNAVAILABLE',
        'WeChat Pay is busy; the order is kept, please pay again shortly',
      );
    }
    // A refusal of these exact parameters: this out_trade_no can never be paid, and no
    // prepay_id exists, so closing it locally cannot strand a payment.
    await closeLocally(deps, order, `unifiedorder ${f.errCode ?? f.code}`, 'unifiedorder');
    throw new AppError('WXPAY_ERROR', `WeChat Pay refused the order: ${f.errCodeDes ?? f.errCode ?? f.code}`);
  }
  const { prepayId, payment } = prepared;
  const now = deps.now();
  if (prepayId === order.prepayId && order.prepayExpiresAtMs - PREPAY_MARGIN_MS > now) {
    // cloudPay's re-entry: the same prepay_id, still valid, already stored.
    return { order, payment };
  }
  const patch = { prepayId, prepayExpiresAtMs: now + PREPAY_TTL_MS, updatedAtMs: now };
  if (!(await deps.store.cas(COLLECTIONS.orders, { _id: order._id, status: 'NOTPAY' }, patch))) {
    // Paid or closed while we were asking WeChat (a fast notify, or reconcile).
    throw notPayable('the order is no longer awaiting payment');
  }
  return { order: { ...order, ...patch }, payment };
}

/**
 * What a verified notify or query says about the money, normalized by the order's provider:
 * the amount (compared with the order before anything is booked), WeChat's transaction id and
 * time of payment, and the facts for the trade log.
 */
export interface PaidFacts {
  totalFen: number | undefined;
  transactionId: string;
  paidAtMs?: number;
  record: TradeRecord;
}

export function paidFacts(s: PaymentStatus): PaidFacts {
  return {
    totalFen: s.totalFen,
    transactionId: s.transactionId ?? '',
    ...(s.paidAtMs !== undefined ? { paidAtMs: s.paidAtMs } : {}),
    record: s.record,
  };
}

export type PaidOutcome = 'PAID' | 'PAID_AFTER_CLOSE' | 'ALREADY_PAID' | 'AMOUNT_MISMATCH';

/**
 * Records verified money for an order exactly once, from a notify or an orderquery.
 *
 *   notify A ─ event(:PAID) ─ CAS NOTPAY→PAID ✔
 *   notify B ─ event(:PAID) duplicate ─ CAS NOTPAY→PAID ✘ ─ re-read: PAID → ALREADY_PAID
 *
 * The event goes first under a deterministic id: a crash between the two writes is healed by
 * WeChat's retry (which finds NOTPAY again), and duplicates can never add a second entry.
 * Money that arrives after a close still wins: CLOSED→PAID, flagged for the merchant.
 */
export async function markPaid(
  deps: Deps,
  order: OrderDoc,
  facts: PaidFacts,
  source: 'notify' | 'orderquery' | 'closeorder',
): Promise<PaidOutcome> {
  if (facts.totalFen !== order.totalFee) {
    deps.log('error', 'order.amount_mismatch', {
      orderId: order._id,
      expected: order.totalFee,
      got: facts.totalFen,
      source,
    });
    return 'AMOUNT_MISMATCH';
  }
  if (order.status === 'PAID') return 'ALREADY_PAID';
  const { store } = deps;
  await recordEvent(deps, {
    kind: 'order',
    orderId: order._id,
    from: order.status,
    to: 'PAID',
    source,
    fields: facts.record,
  });
  const now = deps.now();
  const _ = store.cmd;
  const paid = {
    status: 'PAID',
    // WeChat's time of payment: the one-year refund window and the bills count from it.
    paidAtMs: facts.paidAtMs ?? now,
    transactionId: facts.transactionId,
    updatedAtMs: now,
    nextCheckAtMs: _.remove(),
  };
  let current: OrderDoc | null = order;
  for (let attempt = 0; attempt < 3 && current; attempt++) {
    if (current.status === 'PAID') return 'ALREADY_PAID';
    const from = current.status;
    const patch = from === 'CLOSED' ? { ...paid, flag: 'PAID_AFTER_CLOSE' } : paid;
    if (await store.cas(COLLECTIONS.orders, { _id: order._id, status: from }, patch)) {
      deps.log(from === 'CLOSED' ? 'warn' : 'info', 'order.paid', {
        orderId: order._id,
        from,
        to: 'PAID',
        source,
        transactionId: paid.transactionId,
        dbRequests: store.requests,
      });
      await tellOrderPaid(deps, order, paid.paidAtMs);
      return from === 'CLOSED' ? 'PAID_AFTER_CLOSE' : 'PAID';
    }
    current = await store.get<OrderDoc>(COLLECTIONS.orders, order._id);
  }
  throw new AppError('CONFLICT', `order ${order._id} kept changing while being marked paid`);
}

export async function closeLocally(
  deps: Deps,
  order: OrderDoc,
  reason: string,
  source: 'orderquery' | 'closeorder' | 'unifiedorder',
  record?: TradeRecord,
): Promise<boolean> {
  const now = deps.now();
  const won = await deps.store.cas(
    COLLECTIONS.orders,
    { _id: order._id, status: 'NOTPAY' },
    {
      status: 'CLOSED',
      closedAtMs: now,
      closeReason: reason,
      updatedAtMs: now,
      nextCheckAtMs: deps.store.cmd.remove(),
    },
  );
  if (won) {
    await recordEvent(deps, {
      kind: 'order',
      orderId: order._id,
      from: 'NOTPAY',
      to: 'CLOSED',
      source,
      fields: record ?? {},
    });
    deps.log('info', 'order.closed', {
      orderId: order._id,
      from: 'NOTPAY',
      to: 'CLOSED',
      reason,
      source,
      dbRequests: deps.store.requests,
    });
  }
  return won;
}

/**
 * Actively asks WeChat about a NOTPAY order (the shopper's return from wx.requestPayment is
 * not proof: "在订单状态不明或者没有收到微信支付结果通知的情况下，建议商户主动调用查询订单API").
 */
export async function confirmWithQuery(
  deps: Deps,
  order: OrderDoc,
  options: { deadlineMs?: number } = {},
): Promise<OrderDoc> {
  let res: PaymentStatus;
  try {
    res = await providerOf(deps, order).queryPayment(order._id, options);
  } catch (e) {
    const f = wxFailure(e);
    if (f?.reason === 'ORDER_NOT_FOUND') return order; // never reached WeChat
    throw e;
  }
  if (res.paid) {
    const outcome = await markPaid(deps, order, paidFacts(res), 'orderquery');
    if (outcome === 'AMOUNT_MISMATCH') return order;
    return {
      ...order,
      status: 'PAID',
      transactionId: res.transactionId ?? '',
      paidAtMs: res.paidAtMs ?? deps.now(),
    };
  }
  if (res.state === 'CLOSED' || res.state === 'REVOKED') {
    await closeLocally(deps, order, `trade_state ${res.state}`, 'orderquery', res.record);
    return { ...order, status: 'CLOSED' };
  }
  return order;
}

/**
 * Closes an order that outlived its payment window or was cancelled, at WeChat first when it
 * ever got a prepay_id.
 */
export async function expireOrder(deps: Deps, order: OrderDoc): Promise<'CLOSED' | 'PAID' | 'PENDING'> {
  const now = deps.now();
  if (order.prepayId) {
    const provider = providerOf(deps, order);
    if (now - order.createdAtMs < provider.capabilities.minCloseAgeMs * deps.config.timeScale)
      return 'PENDING';
    try {
      // An order already closed at WeChat counts as closed.
      await provider.closePayment(order._id);
    } catch (e) {
      const f = wxFailure(e);
      if (f?.reason === 'ORDER_PAID') {
        // "订单已支付，不能发起关单，请当作已支付的正常交易": the money is there, notify or not.
        const after = await confirmWithQuery(deps, order);
        return after.status === 'PAID' ? 'PAID' : 'PENDING';
      }
      if (f?.reason !== 'ORDER_CLOSED' && f?.reason !== 'ORDER_NOT_FOUND') {
        deps.log('warn', 'order.closeorder_failed', {
          orderId: order._id,
          errCode: f?.errCode,
          code: f?.code,
        });
        return 'PENDING';
      }
    }
  }
  await closeLocally(deps, order, order.cancelledAtMs === undefined ? 'expired' : 'cancelled', 'closeorder');
  return 'CLOSED';
}

/** The caller's own order: NOT_FOUND when missing, FORBIDDEN when it is someone else's. */
export async function ownOrder(deps: Deps, orderId: string, openid: string): Promise<OrderDoc> {
  const order = await deps.store.get<OrderDoc>(COLLECTIONS.orders, orderId);
  if (!order) throw new AppError('NOT_FOUND', 'order not found');
  if (order.openid !== openid) throw new AppError('FORBIDDEN', 'this order belongs to someone else');
  return order;
}

export async function queryOrder(
  deps: Deps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<QueryOrderResult> {
  const openid = requireOpenid(caller);
  requireOwnApp(deps, caller);
  onlyFields(event, ['orderId']);
  let order = await ownOrder(
    deps,
    requiredString(event, 'orderId', { max: 32, pattern: ID_PATTERN }),
    openid,
  );
  // Asking WeChat counts as a read against the caller's limit; beyond it the stored order is
  // shown (the notify or reconcile still brings the payment in).
  if (order.status === 'NOTPAY' && order.prepayId && (await tryAdmitCall(deps, openid, 'reads')).allowed) {
    try {
      order = await confirmWithQuery(deps, order, { deadlineMs: deps.now() + QUERY_WAIT_MS });
    } catch (e) {
      // The stored state is still true; WeChat being slow must not hide the order.
      deps.log('warn', 'order.query_failed', { orderId: order._id, code: wxFailure(e)?.code ?? String(e) });
    }
  }
  const refunds = await deps.store.find<RefundDoc>(
    COLLECTIONS.refunds,
    { orderId: order._id, openid },
    { orderBy: [['createdAtMs', 'desc']], limit: 50 },
  );
  return { order: orderView(order, deps.now()), refunds: refunds.map((r) => refundView(r)) };
}

export const PAGE_SIZE = 20;

export async function listOrders(
  deps: Deps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<ListOrdersResult> {
  const openid = requireOpenid(caller);
  onlyFields(event, ['status', 'filter', 'cursor']);
  const status = oneOf(event, 'status', ORDER_STATUSES);
  const filter = oneOf(event, 'filter', ['payable', 'afterSale'] as const);
  const _ = deps.store.cmd;
  const base: Record<string, unknown> = status ? { openid, status } : { openid };
  if (filter === 'payable') {
    // What 待支付 means to a shopper: still payable, not merely not paid yet.
    if (status && status !== 'NOTPAY') throw invalid('filter payable lists NOTPAY orders only');
    Object.assign(base, {
      status: 'NOTPAY',
      expiresAtMs: _.gt(deps.now()),
      cancelledAtMs: _.exists(false),
    });
  } else if (filter === 'afterSale') {
    // 售后: money reserved for a refund or refunded (refundUsedFee = reserved + refunded).
    base['refundUsedFee'] = _.gt(0);
  }
  const page = await newestFirstPage<OrderDoc>(
    deps.store,
    COLLECTIONS.orders,
    base,
    event['cursor'],
    PAGE_SIZE,
  );
  const now = deps.now();
  return { items: page.rows.map((o) => orderView(o, now)), nextCursor: page.nextCursor };
}
