/**
 * payNotify and refundNotify (docs/ARCHITECTURE.md §5), for every provider: APIv2's XML and
 * APIv3's signed JSON arrive over HTTP access, cloudPay's callbacks as invocations of the
 * named function. Order of checks:
 *   the provider the message belongs to (by transport; an APIv3 notify carries
 *   Wechatpay-Signature) → its authenticity, with no database request (APIv2: size, hardened
 *   parse, return_code, sign with the allowed types or req_info decryption, appid/mch_id/
 *   sub_mch_id; APIv3: signature on the raw bytes, timestamp, nonce, serial, then AES-GCM with
 *   its tag; cloudPay: the platform's source, then a query whose answer replaces the callback)
 *   → the order or refund exists → it was made through that provider (and sub-merchant) →
 *   amount → the same exactly-once transition as a query.
 * A duplicate is acknowledged with no second effect; a transient failure is answered so that
 * WeChat retries; nothing is acknowledged before the state change is stored.
 */
import type {
  NotificationInput,
  NotificationOutcome,
  NotificationReply,
  PaymentProvider,
  ProviderName,
} from '../providers';
import { cloudPayReply, v2Reply, v3Reply } from '../providers';
import { headerOf } from '../providers/v3/client';
import type { Deps } from './deps';
import { COLLECTIONS, type OrderDoc, type RefundDoc } from './model';
import { markPaid } from './orders';
import { applyWeChatRefund } from './refund-outcome';

export interface NotifyReply {
  /** The transport's acknowledgement (APIv2 XML, APIv3 204/4xx/5xx, cloudPay {errcode}). */
  reply: NotificationReply;
  /** True when WeChat (or the platform) is told the message was received. */
  ok: boolean;
  /** Why, for logs and tests: a stable code. */
  outcome: string;
}

/** The provider a notify is written in: cloudPay's come as function events, APIv3's are signed in headers. */
export function notifyDialect(input: NotificationInput): ProviderName {
  if (input.transport === 'function') return 'cloudpay';
  return headerOf(input.headers, 'wechatpay-signature') !== undefined ||
    headerOf(input.headers, 'wechatpay-serial') !== undefined
    ? 'v3'
    : 'v2';
}

const REPLIES = { v2: v2Reply, v3: v3Reply, cloudpay: cloudPayReply } as const;

function answer(dialect: ProviderName, outcome: NotificationOutcome, code: string): NotifyReply {
  return { reply: REPLIES[dialect](outcome), ok: outcome.ok, outcome: code };
}

const ok = (dialect: ProviderName, code: string) => answer(dialect, { ok: true }, code);
/** Refused for good: WeChat may send it again, nothing will change. */
const refuse = (dialect: ProviderName, code: string, message: string) =>
  answer(dialect, { ok: false, retry: false, message }, code);

/**
 * Verifies a notify with the provider whose dialect it speaks. Unverified messages cost no
 * database request (cloudPay's confirming query is a call to WeChat, not to the database).
 */
async function parse(deps: Deps, kind: string, input: NotificationInput) {
  const dialect = notifyDialect(input);
  const provider: PaymentProvider | undefined = deps.wxpay?.byName[dialect];
  if (!provider) {
    deps.log('warn', `${kind}.rejected`, { reason: 'PROVIDER_NOT_CONFIGURED', provider: dialect });
    return { dialect, refused: refuse(dialect, 'PROVIDER_NOT_CONFIGURED', `${dialect} is not configured`) };
  }
  const parsed = await provider.parseNotification(input);
  if (!parsed.verified) {
    deps.log('warn', `${kind}.rejected`, { reason: parsed.code, provider: dialect, detail: parsed.message });
    return {
      dialect,
      refused: answer(dialect, { ok: false, retry: parsed.retry, message: parsed.message }, parsed.code),
    };
  }
  return { dialect, event: parsed.event };
}

/**
 * One entry for both endpoints: the message itself says whether it is a payment or a refund
 * (cloudPay may call both back through one function), and each is checked against its own
 * order or refund.
 */
export async function handleNotification(
  deps: Deps,
  input: NotificationInput,
  kind: 'pay_notify' | 'refund_notify' = 'pay_notify',
): Promise<NotifyReply> {
  const parsed = await parse(deps, kind, input);
  if (parsed.refused) return parsed.refused;
  const { dialect, event } = parsed;
  if (event.kind === 'ignored')
    return ok(dialect, event.reason === 'RESULT_FAIL' ? 'RESULT_FAIL' : 'IGNORED');

  if (event.kind === 'payment') {
    const orderId = event.outTradeNo;
    const order = await deps.store.get<OrderDoc>(COLLECTIONS.orders, orderId);
    if (!order) {
      deps.log('error', 'pay_notify.rejected', { reason: 'UNKNOWN_ORDER', orderId });
      return refuse(dialect, 'UNKNOWN_ORDER', 'order not found');
    }
    // Each order hears only from the provider (and sub-merchant) it was made through, and an
    // APIv2 order only under the sign type it was made with: another one's valid message is
    // not WeChat speaking about this order.
    const mismatch =
      (order.provider ?? 'v2') !== dialect
        ? 'PROVIDER_MISMATCH'
        : dialect === 'v2' && event.signType !== order.signType
          ? 'SIGN_TYPE_MISMATCH'
          : order.subMchId !== undefined && event.subMchId !== order.subMchId
            ? 'SUB_MERCHANT_MISMATCH'
            : undefined;
    if (mismatch) {
      deps.log('warn', 'pay_notify.rejected', { reason: mismatch, orderId, provider: dialect });
      return refuse(dialect, mismatch, dialect === 'v2' ? 'invalid sign' : 'not this order');
    }
    const outcome = await markPaid(
      deps,
      order,
      {
        totalFen: event.totalFen,
        transactionId: event.transactionId,
        ...(event.paidAtMs !== undefined ? { paidAtMs: event.paidAtMs } : {}),
        record: event.record,
      },
      'notify',
    );
    if (outcome === 'AMOUNT_MISMATCH') return refuse(dialect, 'AMOUNT_MISMATCH', 'total_fee mismatch');
    return ok(dialect, outcome);
  }

  const refundId = event.outRefundNo;
  const refund = await deps.store.get<RefundDoc>(COLLECTIONS.refunds, refundId);
  if (!refund) {
    deps.log('error', 'refund_notify.rejected', { reason: 'UNKNOWN_REFUND', refundId });
    return refuse(dialect, 'UNKNOWN_REFUND', 'refund not found');
  }
  if ((refund.provider ?? 'v2') !== dialect) {
    deps.log('warn', 'refund_notify.rejected', { reason: 'PROVIDER_MISMATCH', refundId, provider: dialect });
    return refuse(dialect, 'PROVIDER_MISMATCH', 'not this refund');
  }
  const outcome = await applyWeChatRefund(deps, refund, event, 'refundnotify');
  if (outcome === 'MISMATCH') return refuse(dialect, 'MISMATCH', 'refund does not match');
  // IGNORED contradicts a final state of ours; it is logged for a person, and answering FAIL
  // would only make WeChat repeat it for a day. A PROCESSING notify is not sent by WeChat.
  return ok(dialect, outcome);
}

export function handlePayNotify(deps: Deps, input: NotificationInput): Promise<NotifyReply> {
  return handleNotification(deps, input, 'pay_notify');
}

export function handleRefundNotify(deps: Deps, input: NotificationInput): Promise<NotifyReply> {
  return handleNotification(deps, input, 'refund_notify');
}

/** An APIv2 or APIv3 notify as the HTTP access delivered it (tests and tools). */
export function httpNotification(
  body: Uint8Array | string,
  headers: Record<string, string | undefined> = {},
): NotificationInput {
  return {
    transport: 'http',
    method: 'POST',
    headers,
    body: typeof body === 'string' ? Buffer.from(body) : body,
  };
}
