/**
 * The payment port over APIv3, for a direct merchant (普通商户) or a service provider acting
 * for a sub-merchant (服务商: sp_* and sub_* fields, partner paths). Notifies are verified on
 * the raw body bytes before anything is decrypted or parsed, then the AES-256-GCM resource
 * is opened with its tag checked, and the merchant fields are compared with ours.
 */
import type { KeyObject } from 'node:crypto';
import { CryptoError } from '../../errors';
import { ProviderError } from '../errors';
import type {
  NormalizedEvent,
  NotificationOutcome,
  NotificationReply,
  ParsedNotification,
  PaymentProvider,
  PaymentStatus,
  ProviderCallOptions,
  ProviderPayment,
  ProviderRefundStatus,
  RefundStatusResult,
  TradeRecord,
  TradeState,
} from '../port';
import { TRADE_STATES } from '../port';
import { billDateDashed, parseRfc3339, rfc3339Beijing } from '../time';
import { checkSignature, type V3Client } from './client';
import { aesGcmOpen, type EncryptedResource, paySignMessage, sha1Hex, signSha256Rsa } from './crypto';
import type { VerifierKeys } from './keys';
import { ReplayGuard } from './replay';

/** WeChat's notify bodies are a few KB; anything far larger is refused unread. */
export const V3_NOTIFY_MAX_BYTES = 64 * 1024;

export type V3Merchant =
  | { kind: 'direct'; appid: string; mchid: string }
  | {
      kind: 'partner';
      spAppid: string;
      spMchid: string;
      subMchid: string;
      /** The sub-merchant's own mini program: payers are then `sub_openid`, and paySign signs it. */
      subAppid?: string;
    };

export interface V3ProviderOptions {
  client: V3Client;
  merchant: V3Merchant;
  apiV3Key: string;
  /** The merchant API private key, for paySign (the client signs requests with the same key). */
  privateKey: KeyObject;
  verifiers: VerifierKeys;
  /** Default for orders that name none. */
  payNotifyUrl?: string;
  /** Overrides the merchant platform's refund notify URL when set. */
  refundNotifyUrl?: string;
  now: () => number;
  nonce: () => string;
  notifyReplayGuard?: ReplayGuard;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Json, k: string): string | undefined {
  const v = o[k];
  return typeof v === 'string' ? v : undefined;
}

function fen(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

/** The facts of a v3 object as flat strings (`amount.total`), arrays and deeper levels left out. */
export function flatRecord(o: Json, prefix = '', depth = 0): TradeRecord {
  const out: TradeRecord = {};
  for (const [k, v] of Object.entries(o)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[key] = String(v);
    else if (isObject(v) && depth < 1) Object.assign(out, flatRecord(v, key, depth + 1));
  }
  return out;
}

function refundStatus(s: string | undefined): ProviderRefundStatus | undefined {
  return s === 'SUCCESS' || s === 'CLOSED' || s === 'PROCESSING' || s === 'ABNORMAL' ? s : undefined;
}

const REFUND_EVENTS: Readonly<Record<string, ProviderRefundStatus>> = {
  'REFUND.SUCCESS': 'SUCCESS',
  'REFUND.ABNORMAL': 'ABNORMAL',
  'REFUND.CLOSED': 'CLOSED',
};

const deadline = (c: ProviderCallOptions | undefined) =>
  c?.deadlineMs !== undefined ? { deadlineMs: c.deadlineMs } : {};

const refused = (code: string, message: string, retry = false): ParsedNotification => ({
  verified: false,
  code,
  message,
  retry,
});

export function createV3Provider(o: V3ProviderOptions): PaymentProvider {
  const { client, merchant: m } = o;
  const partner = m.kind === 'partner';
  const payAppid = m.kind === 'direct' ? m.appid : (m.subAppid ?? m.spAppid);
  const notifyGuard = o.notifyReplayGuard ?? new ReplayGuard();
  const enc = encodeURIComponent;

  function bad(operation: string, description: string): ProviderError {
    return new ProviderError({
      provider: 'v3',
      failure: 'transient',
      reason: 'BAD_RESPONSE',
      providerCode: 'BAD_RESPONSE',
      description,
      operation,
    });
  }

  /** The merchant fields of a transaction or refund (answer or notify) are ours. */
  function merchantProblem(x: Json, kind: 'transaction' | 'refund'): string | undefined {
    if (m.kind === 'direct') {
      if (str(x, 'mchid') !== m.mchid) return 'mchid mismatch';
      if (kind === 'transaction' && str(x, 'appid') !== m.appid) return 'appid mismatch';
      return undefined;
    }
    if (kind === 'refund') {
      // Refund objects carry sub_mchid; notifies also sp_mchid.
      if (str(x, 'sp_mchid') !== undefined && str(x, 'sp_mchid') !== m.spMchid) return 'sp_mchid mismatch';
      if (str(x, 'sub_mchid') !== undefined && str(x, 'sub_mchid') !== m.subMchid)
        return 'sub_mchid mismatch';
      if (
        str(x, 'sp_mchid') === undefined &&
        str(x, 'sub_mchid') === undefined &&
        str(x, 'mchid') !== m.spMchid
      )
        return 'merchant fields missing';
      return undefined;
    }
    if (str(x, 'sp_mchid') !== m.spMchid || str(x, 'sub_mchid') !== m.subMchid)
      return 'sp_mchid or sub_mchid mismatch';
    if (str(x, 'sp_appid') !== m.spAppid) return 'sp_appid mismatch';
    return undefined;
  }

  function resign(prepayId: string): ProviderPayment {
    const timeStamp = String(Math.floor(o.now() / 1000));
    const nonceStr = o.nonce();
    const pkg = `prepay_id=${prepayId}`;
    return {
      timeStamp,
      nonceStr,
      package: pkg,
      signType: 'RSA',
      paySign: signSha256Rsa(paySignMessage(payAppid, timeStamp, nonceStr, pkg), o.privateKey),
    };
  }

  function transactionStatus(t: Json, operation: string, outTradeNo: string): PaymentStatus {
    const state = str(t, 'trade_state');
    if (!state || !(TRADE_STATES as readonly string[]).includes(state)) {
      throw bad(operation, `unknown trade_state ${String(state)}`);
    }
    const problem =
      merchantProblem(t, 'transaction') ??
      (str(t, 'out_trade_no') !== outTradeNo ? 'out_trade_no mismatch' : undefined);
    if (problem) throw bad(operation, `answer ${problem}`);
    const amount = isObject(t['amount']) ? t['amount'] : {};
    const payer = isObject(t['payer']) ? t['payer'] : {};
    const totalFen = fen(amount['total']);
    const paidAtMs = parseRfc3339(str(t, 'success_time'));
    const payerOpenid = str(payer, 'sub_openid') ?? str(payer, 'openid') ?? str(payer, 'sp_openid');
    const transactionId = str(t, 'transaction_id');
    return {
      outTradeNo,
      state: state as TradeState,
      paid: state === 'SUCCESS' || state === 'REFUND',
      ...(transactionId ? { transactionId } : {}),
      ...(totalFen !== undefined ? { totalFen } : {}),
      ...(payerOpenid ? { payerOpenid } : {}),
      ...(paidAtMs !== undefined ? { paidAtMs } : {}),
      record: flatRecord(t),
    };
  }

  function refundResult(r: Json, operation: string, outRefundNo: string): RefundStatusResult {
    const status = refundStatus(str(r, 'status') ?? str(r, 'refund_status'));
    const amount = isObject(r['amount']) ? r['amount'] : {};
    const refundFen = fen(amount['refund']);
    if (!status || refundFen === undefined || str(r, 'out_refund_no') !== outRefundNo) {
      throw bad(operation, 'refund answer lacks status, amount.refund or the out_refund_no asked for');
    }
    const totalFen = fen(amount['total']);
    const successAtMs = parseRfc3339(str(r, 'success_time'));
    return {
      outRefundNo,
      outTradeNo: str(r, 'out_trade_no') ?? '',
      refundId: str(r, 'refund_id') ?? '',
      status,
      refundFen,
      ...(totalFen !== undefined ? { totalFen } : {}),
      ...(successAtMs !== undefined ? { successAtMs } : {}),
      record: flatRecord(r),
    };
  }

  const transactionsBase = partner ? '/v3/pay/partner/transactions' : '/v3/pay/transactions';
  const merchantQuery =
    m.kind === 'direct' ? `mchid=${enc(m.mchid)}` : `sp_mchid=${enc(m.spMchid)}&sub_mchid=${enc(m.subMchid)}`;

  function decodeNotify(body: Uint8Array): { envelope: Json; plain: Json } | ParsedNotification {
    let envelope: unknown;
    try {
      envelope = JSON.parse(Buffer.from(body).toString('utf8'));
    } catch {
      return refused('MALFORMED', 'notify body is not JSON');
    }
    if (
      !isObject(envelope) ||
      typeof envelope['event_type'] !== 'string' ||
      !isObject(envelope['resource'])
    ) {
      return refused('MALFORMED', 'notify lacks event_type or resource');
    }
    if (envelope['resource_type'] !== undefined && envelope['resource_type'] !== 'encrypt-resource') {
      return refused('MALFORMED', `unsupported resource_type ${String(envelope['resource_type'])}`);
    }
    let plain: unknown;
    try {
      plain = JSON.parse(
        aesGcmOpen(envelope['resource'] as unknown as EncryptedResource, o.apiV3Key).toString('utf8'),
      );
    } catch (e) {
      return refused(e instanceof CryptoError ? e.code : 'RESOURCE_INVALID', 'resource does not decrypt');
    }
    if (!isObject(plain)) return refused('MALFORMED', 'resource is not a JSON object');
    return { envelope, plain };
  }

  function eventFrom(envelope: Json, plain: Json): ParsedNotification {
    const type = envelope['event_type'] as string;
    const eventId = str(envelope, 'id') ?? '';
    if (type === 'TRANSACTION.SUCCESS') {
      const problem = merchantProblem(plain, 'transaction');
      if (problem) return refused('MERCHANT_MISMATCH', problem);
      const amount = isObject(plain['amount']) ? plain['amount'] : {};
      const payer = isObject(plain['payer']) ? plain['payer'] : {};
      const outTradeNo = str(plain, 'out_trade_no');
      const totalFen = fen(amount['total']);
      if (!outTradeNo || totalFen === undefined || str(plain, 'trade_state') !== 'SUCCESS') {
        return refused('MALFORMED', 'transaction lacks out_trade_no, amount.total or trade_state SUCCESS');
      }
      const paidAtMs = parseRfc3339(str(plain, 'success_time'));
      const payerOpenid = str(payer, 'sub_openid') ?? str(payer, 'openid') ?? str(payer, 'sp_openid');
      const event: NormalizedEvent = {
        kind: 'payment',
        outTradeNo,
        transactionId: str(plain, 'transaction_id') ?? '',
        totalFen,
        ...(payerOpenid ? { payerOpenid } : {}),
        ...(paidAtMs !== undefined ? { paidAtMs } : {}),
        ...(partner ? { subMchId: str(plain, 'sub_mchid') ?? '' } : {}),
        record: { ...flatRecord(plain), event_id: eventId, event_type: type },
      };
      return { verified: true, event };
    }
    const fromType = REFUND_EVENTS[type];
    if (fromType) {
      const problem = merchantProblem(plain, 'refund');
      if (problem) return refused('MERCHANT_MISMATCH', problem);
      const amount = isObject(plain['amount']) ? plain['amount'] : {};
      const outRefundNo = str(plain, 'out_refund_no');
      const outTradeNo = str(plain, 'out_trade_no');
      const refundFen = fen(amount['refund']);
      // refund_status is the fact; the event type only names it. They must agree.
      const status = refundStatus(str(plain, 'refund_status')) ?? fromType;
      if (!outRefundNo || !outTradeNo || refundFen === undefined || status !== fromType) {
        return refused(
          'MALFORMED',
          'refund lacks out_refund_no, out_trade_no, amount.refund, or its status contradicts the event',
        );
      }
      const totalFen = fen(amount['total']);
      const successAtMs = parseRfc3339(str(plain, 'success_time'));
      const event: NormalizedEvent = {
        kind: 'refund',
        outRefundNo,
        outTradeNo,
        refundId: str(plain, 'refund_id') ?? '',
        status,
        refundFen,
        ...(totalFen !== undefined ? { totalFen } : {}),
        ...(successAtMs !== undefined ? { successAtMs } : {}),
        ...(partner ? { subMchId: str(plain, 'sub_mchid') ?? m.subMchid } : {}),
        record: { ...flatRecord(plain), event_id: eventId, event_type: type },
      };
      return { verified: true, event };
    }
    return { verified: true, event: { kind: 'ignored', reason: `event_type ${type}` } };
  }

  return {
    name: 'v3',
    capabilities: {
      needsClientCert: false,
      refundNotify: true,
      notifyTransport: 'http',
      // "关单没有时间限制,建议…最短5分钟": kept at 5 minutes like v2.
      minCloseAgeMs: 5 * 60_000,
      canResignPayment: true,
      unsignedCallbacks: false,
      signType: 'RSA',
    },

    async createPayment(input, c) {
      const notifyUrl = input.notifyUrl ?? o.payNotifyUrl;
      if (!notifyUrl) throw bad('jsapi', 'no notify_url configured');
      const common = {
        description: input.description,
        out_trade_no: input.outTradeNo,
        time_expire: rfc3339Beijing(input.expiresAtMs),
        ...(input.attach ? { attach: input.attach } : {}),
        notify_url: notifyUrl,
        amount: { total: input.totalFen, currency: 'CNY' },
      };
      const body =
        m.kind === 'direct'
          ? {
              appid: m.appid,
              mchid: m.mchid,
              ...common,
              payer: { openid: input.payerOpenid },
              scene_info: { payer_client_ip: input.clientIp },
            }
          : {
              sp_appid: m.spAppid,
              sp_mchid: m.spMchid,
              ...(m.subAppid ? { sub_appid: m.subAppid } : {}),
              sub_mchid: m.subMchid,
              ...common,
              // "若sub_openid有传的情况下,sub_appid必填": the mini program is the sub-merchant's.
              payer: m.subAppid ? { sub_openid: input.payerOpenid } : { sp_openid: input.payerOpenid },
              scene_info: { payer_client_ip: input.clientIp },
            };
      const res = await client.call('POST', `${transactionsBase}/jsapi`, body, {
        operation: 'jsapi',
        ...deadline(c),
      });
      const prepayId = isObject(res.json) ? str(res.json, 'prepay_id') : undefined;
      if (!prepayId) throw bad('jsapi', 'answer has no prepay_id');
      return { prepayId, payment: resign(prepayId) };
    },

    resignPayment: resign,

    async queryPayment(outTradeNo, c) {
      const res = await client.call(
        'GET',
        `${transactionsBase}/out-trade-no/${enc(outTradeNo)}?${merchantQuery}`,
        undefined,
        { operation: 'query', notFound: 'ORDER_NOT_FOUND', ...deadline(c) },
      );
      if (!isObject(res.json)) throw bad('query', 'answer is not an object');
      return transactionStatus(res.json, 'query', outTradeNo);
    },

    async closePayment(outTradeNo, c) {
      const body = m.kind === 'direct' ? { mchid: m.mchid } : { sp_mchid: m.spMchid, sub_mchid: m.subMchid };
      try {
        await client.call('POST', `${transactionsBase}/out-trade-no/${enc(outTradeNo)}/close`, body, {
          operation: 'close',
          notFound: 'ORDER_NOT_FOUND',
          ...deadline(c),
        });
      } catch (e) {
        if (e instanceof ProviderError && e.reason === 'ORDER_CLOSED') return;
        throw e;
      }
    },

    async refund(input, c) {
      const notifyUrl = input.notifyUrl ?? o.refundNotifyUrl;
      const body = {
        ...(partner ? { sub_mchid: m.subMchid } : {}),
        out_trade_no: input.outTradeNo,
        out_refund_no: input.outRefundNo,
        ...(input.reason ? { reason: input.reason } : {}),
        ...(notifyUrl ? { notify_url: notifyUrl } : {}),
        amount: { refund: input.refundFen, total: input.totalFen, currency: 'CNY' },
      };
      const res = await client.call('POST', '/v3/refund/domestic/refunds', body, {
        operation: 'refund',
        notFound: 'ORDER_NOT_FOUND',
        ...deadline(c),
      });
      if (!isObject(res.json)) throw bad('refund', 'answer is not an object');
      const r = refundResult(res.json, 'refund', input.outRefundNo);
      return { outRefundNo: r.outRefundNo, refundId: r.refundId, status: r.status, record: r.record };
    },

    async queryRefund(outRefundNo, c) {
      const q = partner ? `?sub_mchid=${enc(m.subMchid)}` : '';
      const res = await client.call('GET', `/v3/refund/domestic/refunds/${enc(outRefundNo)}${q}`, undefined, {
        operation: 'refund-query',
        notFound: 'REFUND_NOT_FOUND',
        ...deadline(c),
      });
      if (!isObject(res.json)) throw bad('refund-query', 'answer is not an object');
      return refundResult(res.json, 'refund-query', outRefundNo);
    },

    async downloadBill(date, type = 'ALL', c) {
      const day = billDateDashed(date);
      if (!day) {
        throw new ProviderError({
          provider: 'v3',
          failure: 'definitive',
          reason: 'INVALID_REQUEST',
          providerCode: 'INVALID_BILL_DATE',
          description: `bill date must be YYYY-MM-DD, got ${date}`,
          operation: 'tradebill',
        });
      }
      const sub = partner ? `&sub_mchid=${enc(m.subMchid)}` : '';
      const res = await client.call(
        'GET',
        `/v3/bill/tradebill?bill_date=${day}&bill_type=${type}${sub}`,
        undefined,
        { operation: 'tradebill', ...deadline(c) },
      );
      const j = isObject(res.json) ? res.json : {};
      const url = str(j, 'download_url');
      const hash = str(j, 'hash_value');
      if (!url || !hash || (str(j, 'hash_type') ?? 'SHA1') !== 'SHA1') {
        throw bad('tradebill', 'answer lacks download_url or a SHA1 hash_value');
      }
      const file = await client.download(url, { operation: 'billdownload', ...deadline(c) });
      // The file itself is not signed ("需要跳过验签的流程"); its SHA1 from the signed answer
      // is what proves it is WeChat's and complete.
      if (sha1Hex(file) !== hash.toLowerCase())
        throw bad('billdownload', 'bill file SHA1 does not match hash_value');
      return file.toString('utf8');
    },

    async parseNotification(input) {
      if (input.transport !== 'http') return refused('WRONG_TRANSPORT', 'APIv3 notifies arrive over HTTP');
      if (input.method.toUpperCase() !== 'POST') return refused('METHOD', 'POST only');
      if (input.body.byteLength > V3_NOTIFY_MAX_BYTES) return refused('TOO_LARGE', 'notify body too large');
      // Verify first, on the bytes as received; parse and decrypt only what WeChat signed.
      const check = checkSignature(input.headers, input.body, o.verifiers, o.now(), notifyGuard);
      if (!check.ok) return refused(check.code, check.message);
      const decoded = decodeNotify(input.body);
      if ('verified' in decoded) return decoded;
      return eventFrom(decoded.envelope, decoded.plain);
    },

    reply: v3Reply,
  };
}

/** APIv3's acknowledgement: 204 once stored; 4xx/5xx with a JSON body asks WeChat to send it again. */
export function v3Reply(outcome: NotificationOutcome): NotificationReply {
  // "接收成功:HTTP应答状态码需返回200或204,无需返回应答报文"; a failure is 4xx/5xx with
  // {"code":"FAIL","message":…}, and WeChat sends it again on its schedule.
  if (outcome.ok) return { transport: 'http', statusCode: 204, headers: {}, body: '' };
  return {
    transport: 'http',
    statusCode: outcome.retry ? 500 : 400,
    headers: { 'content-type': 'application/json; charset=utf-8' },
    body: JSON.stringify({ code: 'FAIL', message: outcome.message }),
  };
}
