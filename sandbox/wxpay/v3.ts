/**
 * The simulator's APIv3 side: the same engine and ledger as APIv2 (one WeChat Pay, two
 * dialects), with v3's transport. Requests must carry a valid WECHATPAY2-SHA256-RSA2048
 * Authorization made with the merchant API certificate's key; every answer is signed with
 * WeChat Pay's public key when the request names its id in `Wechatpay-Serial` (or when the
 * merchant has no platform certificate), else with the platform certificate; notifies are
 * JSON with an AES-256-GCM resource, signed at every attempt, acknowledged by 200/204.
 * Paths, fields and error codes follow the official v3 pages summarised in the provider
 * code (cloudfunctions/shared/providers/v3).
 */

import { createPrivateKey, type KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseRfc3339, rfc3339Beijing } from '../../cloudfunctions/shared/providers/time';
import {
  aesGcmSeal,
  parseAuthorizationHeader,
  paySignMessage,
  requestMessage,
  sha1Hex,
  verifySha256Rsa,
} from '../../cloudfunctions/shared/providers/v3/crypto';
import { notifyBodyForTest, signAnswerForTest } from '../../cloudfunctions/shared/providers/v3/testing';
import type { WxParams, WxParamsIn } from '../../cloudfunctions/shared/wxpay';
import { generateBill } from './bills';
import {
  type ApiPath,
  type Engine,
  type EngineHooks,
  type ForeignNotify,
  ResultFail,
  ReturnFail,
} from './engine';
import type { Ledger, PendingNotify, SimOrder, SimRefund } from './ledger';
import type { NotifyDelivery } from './notifier';
import { findView, type MerchantView } from './partner';
import { compactTime } from './time';
import type { SimMerchant } from './verify';

export interface SimV3Options {
  /** WeChat Pay public key mode (every merchant opened since late 2024 has only this). */
  publicKey?: { id: string; privateKeyPem: string };
  /** Platform certificate mode (older merchants). */
  platformCertificate?: { certPem: string; privateKeyPem: string };
  /**
   * Which key signs notifies: the public key (the default when there is one), the platform
   * certificate, or a share from 0 to 1 signed with the public key, as during WeChat's
   * week-long switch-over ("灰度").
   */
  notifySigner?: 'public-key' | 'platform-certificate' | number;
}

interface Signer {
  serial: string;
  privateKey: KeyObject;
}

/** "微信支付会拒绝处理很久之前发起的请求": the simulator allows five minutes either way. */
const REQUEST_SKEW_S = 300;

/** APIv2 err_code → APIv3 HTTP status and code. */
const V3_ERRORS: Readonly<Record<string, [number, string]>> = {
  ORDERPAID: [400, 'ORDERPAID'],
  ORDERCLOSED: [400, 'ORDER_CLOSED'],
  ORDERNOTEXIST: [404, 'ORDER_NOT_EXIST'],
  REFUNDNOTEXIST: [404, 'RESOURCE_NOT_EXISTS'],
  LACK_PARAMS: [400, 'PARAM_ERROR'],
  PARAM_ERROR: [400, 'PARAM_ERROR'],
  INVALID_REQUEST: [400, 'INVALID_REQUEST'],
  NOTENOUGH: [403, 'NOT_ENOUGH'],
  USER_ACCOUNT_ABNORMAL: [403, 'USER_ACCOUNT_ABNORMAL'],
  TRADE_OVERDUE: [400, 'TRADE_OVERDUE'],
  SYSTEMERROR: [500, 'SYSTEM_ERROR'],
  BIZERR_NEED_RETRY: [500, 'SYSTEM_ERROR'],
  FREQUENCY_LIMITED: [429, 'FREQUENCY_LIMITED'],
  INVALID_REQ_TOO_MUCH: [429, 'FREQUENCY_LIMITED'],
  ERROR: [400, 'INVALID_REQUEST'],
};

const V3_REFUND_STATUS = {
  PROCESSING: 'PROCESSING',
  SUCCESS: 'SUCCESS',
  REFUNDCLOSE: 'CLOSED',
  CHANGE: 'ABNORMAL',
} as const;
const REFUND_EVENT = {
  SUCCESS: 'REFUND.SUCCESS',
  REFUNDCLOSE: 'REFUND.CLOSED',
  CHANGE: 'REFUND.ABNORMAL',
} as const;

export interface FaultDecisions {
  /** Never answer (the client's timeout decides). */
  timeout(path: ApiPath): boolean;
  /** Answer SYSTEMERROR without any effect (consumes systemErrorNext). */
  systemError(path: ApiPath): boolean;
  /** Take effect, then never answer. */
  hangAfterEffect(path: ApiPath): boolean;
}

class V3Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly message: string,
  ) {}
}

export interface V3SideOptions {
  engine: () => Engine;
  ledger: Ledger;
  merchants: readonly SimMerchant[];
  options: SimV3Options;
  now: () => number;
  /**
   * The clock of signatures and their 5-minute window: the wall clock both sides keep, even
   * while the business clock (`now`) runs ahead to reach the next day's bill. Default `now`.
   */
  wallNow?: () => number;
  random: () => number;
  /** The same fault decisions as APIv2's, by the v2 path an operation corresponds to. */
  faults: FaultDecisions;
  /** Never answers `res` (a timeout fault); the server closes it on shutdown. */
  hang: (res: ServerResponse) => void;
  /** POSTs a notify with headers (the notifier's sender, with its CA and timeout). */
  post: (
    url: string,
    body: string,
    headers: Record<string, string>,
  ) => Promise<{ status: number; body: string }>;
}

export interface V3Side {
  handle(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void>;
  hooks: Required<Pick<EngineHooks, 'checkPaySign'>> & {
    payNotify(order: SimOrder, m: SimMerchant): ForeignNotify | undefined;
    refundNotify(refund: SimRefund, m: SimMerchant): ForeignNotify | undefined;
  };
  deliver: NotifyDelivery;
  /** Wechatpay-* headers for a notify body, signed by the key that signs notifies now. */
  signNotifyForTest(body: string, opts?: { timestampS?: number; nonce?: string }): Record<string, string>;
  /** What the shop's configuration needs to verify the simulator's answers. */
  publicKeyId: string | undefined;
  platformSerial: string | undefined;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export function createV3Side(o: V3SideOptions): V3Side {
  const wallNow = o.wallNow ?? o.now;
  const pub: Signer | undefined = o.options.publicKey
    ? { serial: o.options.publicKey.id, privateKey: createPrivateKey(o.options.publicKey.privateKeyPem) }
    : undefined;
  const platformCert = o.options.platformCertificate
    ? new X509Certificate(o.options.platformCertificate.certPem)
    : undefined;
  const cert: Signer | undefined =
    o.options.platformCertificate && platformCert
      ? {
          serial: platformCert.serialNumber.toUpperCase(),
          privateKey: createPrivateKey(o.options.platformCertificate.privateKeyPem),
        }
      : undefined;
  if (!pub && !cert) throw new Error('APIv3 needs a WeChat Pay public key or a platform certificate');
  const merchantKeys = new Map<string, { serial: string; key: KeyObject }>();
  for (const m of o.merchants) {
    if (!m.v3) continue;
    const c = new X509Certificate(m.v3.certPem);
    merchantKeys.set(m.mchId, { serial: c.serialNumber.toUpperCase(), key: c.publicKey });
  }
  const bills = new Map<string, { csv: string; untilMs: number }>();

  /** Answers are signed with the public key when asked for it by Wechatpay-Serial, or when it is all there is. */
  function answerSigner(requestSerial: string | undefined): Signer {
    if (pub && (requestSerial === pub.serial || !cert)) return pub;
    return (cert ?? pub)!;
  }

  function notifySigner(): Signer {
    const choice = o.options.notifySigner ?? (pub ? 'public-key' : 'platform-certificate');
    if (typeof choice === 'number') return (o.random() < choice ? (pub ?? cert) : (cert ?? pub))!;
    return (choice === 'public-key' ? (pub ?? cert) : (cert ?? pub))!;
  }

  function send(res: ServerResponse, req: IncomingMessage, status: number, body: Json | undefined): void {
    const text = body === undefined ? '' : JSON.stringify(body);
    const signer = answerSigner(header(req, 'wechatpay-serial'));
    const headers = signAnswerForTest(signer, text, { timestampS: Math.floor(wallNow() / 1000) });
    res.writeHead(status, {
      ...headers,
      'Request-ID': randomBytes(12).toString('hex'),
      ...(text ? { 'content-type': 'application/json; charset=utf-8' } : {}),
    });
    res.end(text);
  }

  // ---- request authentication ---------------------------------------------------------

  function authenticate(req: IncomingMessage, body: Buffer): SimMerchant {
    const auth = parseAuthorizationHeader(header(req, 'authorization'));
    if (!auth) throw new V3Error(401, 'SIGN_ERROR', 'Authorization 缺失或格式错误');
    const m = o.merchants.find((x) => x.mchId === auth.mchid);
    const key = merchantKeys.get(auth.mchid);
    if (!m || !key) throw new V3Error(401, 'SIGN_ERROR', '商户号不存在或未开通APIv3');
    if (auth.serial_no.toUpperCase() !== key.serial)
      throw new V3Error(401, 'SIGN_ERROR', '证书序列号错误，请检查商户API证书');
    const ts = Number(auth.timestamp);
    if (!/^\d{1,12}$/.test(auth.timestamp) || Math.abs(wallNow() / 1000 - ts) > REQUEST_SKEW_S) {
      throw new V3Error(401, 'SIGN_ERROR', '请求时间戳与当前时间相差过大');
    }
    // The URL as sent (path + query, not re-encoded) and the body bytes as sent.
    const message = requestMessage(
      req.method ?? 'GET',
      req.url ?? '/',
      auth.timestamp,
      auth.nonce_str,
      body.toString('utf8'),
    );
    if (!verifySha256Rsa(message, auth.signature, key.key)) throw new V3Error(401, 'SIGN_ERROR', '签名错误');
    return m;
  }

  // ---- merchant of a request ------------------------------------------------------------

  function direct(m: SimMerchant, mchid: unknown, appid?: unknown): MerchantView {
    if (mchid !== m.mchId) throw new V3Error(400, 'PARAM_ERROR', 'mchid与请求签名的商户号不一致');
    if (appid !== undefined && appid !== m.appid)
      throw new V3Error(400, 'APPID_MCHID_NOT_MATCH', 'AppID和mch_id不匹配');
    return m;
  }

  function partner(
    m: SimMerchant,
    spMchid: unknown,
    subMchid: unknown,
    spAppid?: unknown,
    subAppid?: unknown,
  ): MerchantView {
    if (spMchid !== m.mchId) throw new V3Error(400, 'PARAM_ERROR', 'sp_mchid与请求签名的商户号不一致');
    if (spAppid !== undefined && spAppid !== m.appid)
      throw new V3Error(400, 'APPID_MCHID_NOT_MATCH', 'sp_appid和sp_mchid不匹配');
    const view =
      typeof subMchid === 'string'
        ? findView(m, subMchid, typeof subAppid === 'string' ? subAppid : undefined)
        : undefined;
    if (!view) throw new V3Error(400, 'INVALID_REQUEST', '受理关系不存在');
    return view;
  }

  // ---- engine bridge ----------------------------------------------------------------------

  function engineCall(path: Exclude<ApiPath, '/pay/downloadbill'>, p: WxParamsIn, m: MerchantView): WxParams {
    const params: WxParams = {};
    for (const [k, v] of Object.entries(p))
      if (v !== undefined && v !== null && v !== '') params[k] = String(v);
    const out = o.engine().handle(path, params, m);
    if (out instanceof ReturnFail) throw new V3Error(400, 'PARAM_ERROR', out.returnMsg);
    if (out instanceof ResultFail) {
      const [status, code] = out.errCodeDes.includes('201')
        ? [403, 'OUT_TRADE_NO_USED']
        : (V3_ERRORS[out.errCode] ?? [400, out.errCode]);
      throw new V3Error(status, code, out.errCodeDes);
    }
    const fields: WxParams = {};
    for (const [k, v] of Object.entries(out)) if (v !== undefined && v !== null) fields[k] = String(v);
    return fields;
  }

  function transaction(order: SimOrder, m: MerchantView): Json {
    const paid = order.tradeState === 'SUCCESS' || order.tradeState === 'REFUND';
    const head: Json = m.partner
      ? {
          sp_appid: m.partner.spAppid,
          sp_mchid: m.partner.spMchId,
          ...(m.partner.subAppid ? { sub_appid: m.partner.subAppid } : {}),
          sub_mchid: m.partner.subMchId,
        }
      : { appid: order.appid, mchid: order.mchId };
    const payer = m.partner
      ? order.request['sub_openid']
        ? { sub_openid: order.openid }
        : { sp_openid: order.openid }
      : { openid: order.openid };
    return {
      ...head,
      out_trade_no: order.outTradeNo,
      ...(order.transactionId ? { transaction_id: order.transactionId } : {}),
      trade_type: 'JSAPI',
      trade_state: order.tradeState,
      trade_state_desc: TRADE_STATE_DESC[order.tradeState],
      ...(paid ? { bank_type: 'OTHERS', success_time: rfc3339Beijing(order.paidAtMs!) } : {}),
      attach: order.attach ?? '',
      payer,
      amount: paid
        ? { total: order.totalFee, payer_total: order.totalFee, currency: 'CNY', payer_currency: 'CNY' }
        : { total: order.totalFee, currency: 'CNY' },
    };
  }

  function refundJson(r: SimRefund, m: MerchantView): Json {
    return {
      refund_id: r.refundId,
      out_refund_no: r.outRefundNo,
      transaction_id: r.transactionId,
      out_trade_no: r.outTradeNo,
      ...(m.partner ? { sub_mchid: m.partner.subMchId } : {}),
      channel: 'ORIGINAL',
      user_received_account: '支付用户零钱',
      ...(r.status === 'SUCCESS' && r.settledAtMs !== undefined
        ? { success_time: rfc3339Beijing(r.settledAtMs) }
        : {}),
      create_time: rfc3339Beijing(r.createdAtMs),
      status: V3_REFUND_STATUS[r.status],
      funds_account: 'AVAILABLE',
      amount: {
        total: r.totalFee,
        refund: r.refundFee,
        from: [],
        payer_total: r.totalFee,
        payer_refund: r.refundFee,
        settlement_refund: r.refundFee,
        settlement_total: r.totalFee,
        discount_refund: 0,
        currency: 'CNY',
      },
      promotion_detail: [],
    };
  }

  // ---- operations -------------------------------------------------------------------------

  function jsapi(m: SimMerchant, b: Json, isPartner: boolean): Json {
    const view = isPartner
      ? partner(m, b['sp_mchid'], b['sub_mchid'], b['sp_appid'], b['sub_appid'])
      : direct(m, b['mchid'], b['appid']);
    const amount = isObject(b['amount']) ? b['amount'] : {};
    const payer = isObject(b['payer']) ? b['payer'] : {};
    const scene = isObject(b['scene_info']) ? b['scene_info'] : {};
    const total = amount['total'];
    if (typeof total !== 'number' || !Number.isSafeInteger(total) || total < 1)
      throw new V3Error(400, 'PARAM_ERROR', 'amount.total必须是正整数（单位：分）');
    if (amount['currency'] !== undefined && amount['currency'] !== 'CNY')
      throw new V3Error(400, 'PARAM_ERROR', 'currency仅支持CNY');
    for (const f of ['description', 'out_trade_no', 'notify_url'] as const) {
      if (typeof b[f] !== 'string' || b[f] === '') throw new V3Error(400, 'PARAM_ERROR', `缺少参数${f}`);
    }
    const subOpenid = isPartner && typeof payer['sub_openid'] === 'string' ? payer['sub_openid'] : undefined;
    if (subOpenid && !(view as MerchantView).partner?.subAppid)
      throw new V3Error(400, 'PARAM_ERROR', '传sub_openid时sub_appid必填');
    const openid = subOpenid ?? (isPartner ? payer['sp_openid'] : payer['openid']);
    if (typeof openid !== 'string' || openid === '') throw new V3Error(400, 'PARAM_ERROR', '缺少参数payer');
    let timeExpire: string | undefined;
    if (b['time_expire'] !== undefined) {
      const ms = parseRfc3339(String(b['time_expire']));
      if (ms === undefined) throw new V3Error(400, 'PARAM_ERROR', 'time_expire格式错误，应为rfc3339');
      timeExpire = compactTime(ms);
    }
    const outTradeNo = String(b['out_trade_no']);
    const existed = o.ledger.order(view.mchId, outTradeNo) !== undefined;
    const fields = engineCall(
      '/pay/unifiedorder',
      {
        body: String(b['description']),
        out_trade_no: outTradeNo,
        total_fee: total,
        spbill_create_ip:
          typeof scene['payer_client_ip'] === 'string' ? scene['payer_client_ip'] : '127.0.0.1',
        notify_url: String(b['notify_url']),
        trade_type: 'JSAPI',
        openid,
        sub_openid: subOpenid,
        time_expire: timeExpire,
        attach: typeof b['attach'] === 'string' ? b['attach'] : undefined,
      },
      view,
    );
    const order = o.ledger.order(view.mchId, outTradeNo);
    if (order && !existed) {
      order.api = 'v3';
      o.ledger.putOrder(order);
    }
    return { prepay_id: fields['prepay_id'] };
  }

  function query(view: MerchantView, by: { out_trade_no: string } | { transaction_id: string }): Json {
    engineCall('/pay/orderquery', by, view);
    const order =
      'out_trade_no' in by
        ? o.ledger.order(view.mchId, by.out_trade_no)
        : o.ledger.orderByTransactionId(view.mchId, by.transaction_id);
    if (!order) throw new V3Error(404, 'ORDER_NOT_EXIST', '订单不存在');
    return transaction(order, view);
  }

  function close(view: MerchantView, outTradeNo: string): undefined {
    engineCall('/pay/closeorder', { out_trade_no: outTradeNo }, view);
    return undefined;
  }

  function refund(m: SimMerchant, b: Json): Json {
    const view: MerchantView = b['sub_mchid'] !== undefined ? partner(m, m.mchId, b['sub_mchid']) : m;
    const amount = isObject(b['amount']) ? b['amount'] : {};
    const outRefundNo = typeof b['out_refund_no'] === 'string' ? b['out_refund_no'] : '';
    if (!outRefundNo) throw new V3Error(400, 'PARAM_ERROR', '缺少参数out_refund_no');
    for (const f of ['refund', 'total'] as const) {
      const v = amount[f];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
        throw new V3Error(400, 'PARAM_ERROR', `amount.${f}必须是正整数（单位：分）`);
    }
    const existed = o.ledger.refund(view.mchId, outRefundNo) !== undefined;
    const notifyUrl =
      (typeof b['notify_url'] === 'string' && b['notify_url']) ||
      view.v3?.refundNotifyUrl ||
      view.refundNotifyUrl;
    engineCall(
      '/secapi/pay/refund',
      {
        out_trade_no: typeof b['out_trade_no'] === 'string' ? b['out_trade_no'] : undefined,
        transaction_id: typeof b['transaction_id'] === 'string' ? b['transaction_id'] : undefined,
        out_refund_no: outRefundNo,
        total_fee: amount['total'] as number,
        refund_fee: amount['refund'] as number,
        refund_desc: typeof b['reason'] === 'string' ? b['reason'] : undefined,
        notify_url: notifyUrl,
      },
      view,
    );
    const r = o.ledger.refund(view.mchId, outRefundNo)!;
    if (!existed) {
      r.api = 'v3';
      o.ledger.putRefund(r);
    }
    return refundJson(r, view);
  }

  function refundQuery(view: MerchantView, outRefundNo: string): Json {
    engineCall('/pay/refundquery', { out_refund_no: outRefundNo }, view);
    const r = o.ledger.refund(view.mchId, outRefundNo);
    if (!r) throw new V3Error(404, 'RESOURCE_NOT_EXISTS', '退款单不存在');
    return refundJson(r, view);
  }

  function tradeBill(req: IncomingMessage, view: MerchantView, q: URLSearchParams): Json {
    const date = q.get('bill_date') ?? '';
    if (!/^\d{4}-\d{2}-\d{2}$/.test(date))
      throw new V3Error(400, 'PARAM_ERROR', 'bill_date格式应为YYYY-MM-DD');
    const bill = generateBill(
      o.ledger,
      view,
      { bill_date: date.replace(/-/g, ''), bill_type: q.get('bill_type') ?? 'ALL' },
      o.now(),
    );
    if ('returnMsg' in bill) {
      if (bill.returnMsg === 'No Bill Exist') throw new V3Error(400, 'NO_STATEMENT_EXIST', '账单不存在');
      throw new V3Error(400, 'PARAM_ERROR', bill.returnMsg);
    }
    const csv = bill.body.toString('utf8');
    const token = randomBytes(16).toString('hex');
    bills.set(token, { csv, untilMs: Date.now() + 10 * 60_000 });
    return {
      hash_type: 'SHA1',
      hash_value: sha1Hex(Buffer.from(csv, 'utf8')),
      download_url: `https://${req.headers.host}/v3/billdownload/file?token=${token}`,
    };
  }

  function certificates(m: SimMerchant): Json {
    if (!cert || !platformCert || !o.options.platformCertificate) {
      throw new V3Error(
        404,
        'RESOURCE_NOT_EXISTS',
        '无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥',
      );
    }
    const nonce = randomBytes(6).toString('hex');
    return {
      data: [
        {
          serial_no: cert.serial,
          effective_time: rfc3339Beijing(Date.parse(platformCert.validFrom)),
          expire_time: rfc3339Beijing(Date.parse(platformCert.validTo)),
          encrypt_certificate: {
            algorithm: 'AEAD_AES_256_GCM',
            nonce,
            associated_data: 'certificate',
            ciphertext: aesGcmSeal(
              o.options.platformCertificate.certPem,
              m.v3!.apiV3Key,
              nonce,
              'certificate',
            ),
          },
        },
      ],
    };
  }

  /** The v2 path whose fault rates an operation shares. */
  function faultPath(method: string, path: string): ApiPath {
    if (path.endsWith('/jsapi')) return '/pay/unifiedorder';
    if (path.endsWith('/close')) return '/pay/closeorder';
    if (path.startsWith('/v3/refund/') && method === 'POST') return '/secapi/pay/refund';
    if (path.startsWith('/v3/refund/')) return '/pay/refundquery';
    if (path.startsWith('/v3/bill')) return '/pay/downloadbill';
    return '/pay/orderquery';
  }

  async function handle(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const fp = faultPath(method, path);
    if (o.faults.timeout(fp)) return o.hang(res);
    try {
      const m = authenticate(req, body);
      if (path === '/v3/billdownload/file') {
        // The file answer carries no signature ("该接口响应的信息请求头中不包含微信接口响应的签名值").
        const bill = bills.get(url.searchParams.get('token') ?? '');
        if (!bill || bill.untilMs < Date.now())
          throw new V3Error(404, 'RESOURCE_NOT_EXISTS', '账单下载链接已过期');
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(bill.csv);
        return;
      }
      if (o.faults.systemError(fp)) throw new V3Error(500, 'SYSTEM_ERROR', '系统繁忙，请稍后重试');
      let b: Json = {};
      if (method === 'POST') {
        try {
          const parsed: unknown = JSON.parse(body.toString('utf8'));
          if (!isObject(parsed)) throw new Error('not an object');
          b = parsed;
        } catch {
          throw new V3Error(400, 'PARAM_ERROR', '请求体不是合法的JSON');
        }
      }
      const q = url.searchParams;
      const subView = () => (q.get('sub_mchid') !== null ? partner(m, m.mchId, q.get('sub_mchid')) : m);
      // [method, path pattern, operation]: the answer, or undefined for 204 No Content.
      const routes: [string, RegExp, (p: string[]) => Json | undefined][] = [
        ['POST', /^\/v3\/pay\/transactions\/jsapi$/, () => jsapi(m, b, false)],
        ['POST', /^\/v3\/pay\/partner\/transactions\/jsapi$/, () => jsapi(m, b, true)],
        [
          'GET',
          /^\/v3\/pay\/transactions\/out-trade-no\/([^/]+)$/,
          ([no]) => query(direct(m, q.get('mchid')), { out_trade_no: no! }),
        ],
        [
          'GET',
          /^\/v3\/pay\/transactions\/id\/([^/]+)$/,
          ([id]) => query(direct(m, q.get('mchid')), { transaction_id: id! }),
        ],
        [
          'GET',
          /^\/v3\/pay\/partner\/transactions\/out-trade-no\/([^/]+)$/,
          ([no]) => query(partner(m, q.get('sp_mchid'), q.get('sub_mchid')), { out_trade_no: no! }),
        ],
        [
          'POST',
          /^\/v3\/pay\/transactions\/out-trade-no\/([^/]+)\/close$/,
          ([no]) => close(direct(m, b['mchid']), no!),
        ],
        [
          'POST',
          /^\/v3\/pay\/partner\/transactions\/out-trade-no\/([^/]+)\/close$/,
          ([no]) => close(partner(m, b['sp_mchid'], b['sub_mchid']), no!),
        ],
        ['POST', /^\/v3\/refund\/domestic\/refunds$/, () => refund(m, b)],
        ['GET', /^\/v3\/refund\/domestic\/refunds\/([^/]+)$/, ([no]) => refundQuery(subView(), no!)],
        ['GET', /^\/v3\/bill\/tradebill$/, () => tradeBill(req, subView(), q)],
        ['GET', /^\/v3\/certificates$/, () => certificates(m)],
      ];
      const route = routes.find(([verb, re]) => verb === method && re.test(path));
      if (!route) throw new V3Error(404, 'NOT_FOUND', `模拟器不支持 ${method} ${path}`);
      const args = route[1].exec(path)!.slice(1).map(decodeURIComponent);
      const out = route[2](args);
      if (o.faults.hangAfterEffect(fp)) return o.hang(res);
      send(res, req, out === undefined ? 204 : 200, out);
    } catch (e) {
      if (!(e instanceof V3Error)) throw e;
      send(res, req, e.status, { code: e.code, message: e.message });
    }
  }

  // ---- the phone and the notifies ---------------------------------------------------------

  function checkPaySign(order: SimOrder, p: Record<string, string | undefined>): string | undefined {
    if (p['signType'] !== 'RSA') return '支付验证签名失败（APIv3 下单的订单 signType 必须是 RSA）';
    const m = o.merchants.find((x) => x.mchId === (order.mchId.split('/')[0] ?? order.mchId));
    const key = m ? merchantKeys.get(m.mchId) : undefined;
    if (!key) return '支付验证签名失败（商户未开通APIv3）';
    const message = paySignMessage(
      order.appid,
      p['timeStamp'] ?? '',
      p['nonceStr'] ?? '',
      p['package'] ?? '',
    );
    return verifySha256Rsa(message, p['paySign'] ?? '', key.key) ? undefined : '支付验证签名失败';
  }

  function apiV3KeyOf(m: SimMerchant): string {
    if (!m.v3) throw new Error(`merchant ${m.mchId} has no APIv3 key`);
    return m.v3.apiV3Key;
  }

  function payNotify(order: SimOrder, m: SimMerchant): ForeignNotify | undefined {
    if (order.api !== 'v3') return undefined;
    const body = notifyBodyForTest(
      'TRANSACTION.SUCCESS',
      transaction(order, m as MerchantView),
      apiV3KeyOf(m),
      {
        id: `EV-${randomBytes(12).toString('hex')}`,
        createTime: rfc3339Beijing(o.now()),
      },
    );
    return { url: order.notifyUrl, body, transport: 'v3' };
  }

  function refundNotify(r: SimRefund, m: SimMerchant): ForeignNotify | undefined {
    if (r.api !== 'v3' || !r.notifyUrl || r.status === 'PROCESSING') return undefined;
    const view = m as MerchantView;
    const resource: Json = {
      ...(view.partner
        ? { sp_mchid: view.partner.spMchId, sub_mchid: view.partner.subMchId }
        : { mchid: r.mchId }),
      out_trade_no: r.outTradeNo,
      transaction_id: r.transactionId,
      out_refund_no: r.outRefundNo,
      refund_id: r.refundId,
      refund_status: V3_REFUND_STATUS[r.status],
      ...(r.status === 'SUCCESS' && r.settledAtMs !== undefined
        ? { success_time: rfc3339Beijing(r.settledAtMs) }
        : {}),
      user_received_account: '支付用户零钱',
      amount: { total: r.totalFee, refund: r.refundFee, payer_total: r.totalFee, payer_refund: r.refundFee },
    };
    const body = notifyBodyForTest(REFUND_EVENT[r.status], resource, apiV3KeyOf(m), {
      id: `EV-${randomBytes(12).toString('hex')}`,
      createTime: rfc3339Beijing(o.now()),
    });
    return { url: r.notifyUrl, body, transport: 'v3' };
  }

  /** Each attempt is signed anew: a retry 24 hours later must still pass the 5-minute window. */
  async function deliver(n: PendingNotify): Promise<{ status: number; body: string; acknowledged: boolean }> {
    const headers = signAnswerForTest(notifySigner(), n.body, {
      timestampS: Math.floor(wallNow() / 1000),
      signatureType: true,
    });
    const reply = await o.post(n.url, n.body, { ...headers, 'content-type': 'application/json' });
    // "接收成功:HTTP应答状态码需返回200或204,无需返回应答报文".
    return { ...reply, acknowledged: reply.status === 200 || reply.status === 204 };
  }

  return {
    handle,
    hooks: { checkPaySign, payNotify, refundNotify },
    deliver,
    signNotifyForTest: (body, opts = {}) =>
      signAnswerForTest(notifySigner(), body, {
        timestampS: opts.timestampS ?? Math.floor(wallNow() / 1000),
        ...(opts.nonce ? { nonce: opts.nonce } : {}),
        signatureType: true,
      }),
    publicKeyId: pub?.serial,
    platformSerial: cert?.serial,
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

const TRADE_STATE_DESC: Record<SimOrder['tradeState'], string> = {
  NOTPAY: '订单未支付',
  SUCCESS: '支付成功',
  REFUND: '转入退款',
  CLOSED: '订单已关闭',
  USERPAYING: '用户支付中',
  PAYERROR: '支付失败',
};
