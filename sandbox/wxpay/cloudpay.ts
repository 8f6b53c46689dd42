/**
 * cloudPay (云开发 微信支付) as the platform runs it, on the simulator's engine and ledger.
 * A cloudPay merchant is a sub-merchant of Tencent's service provider, so its orders live in
 * that provider's view of it, apart from the merchant's own APIv2/APIv3 orders: a cloudPay
 * order cannot be queried or refunded through the merchant's direct API, as at WeChat
 * ("RESOURCE_NOT_EXISTS 订单不存在").
 *
 * Calls arrive from the CloudBase emulator with snake_case fields (wx-server-sdk converts
 * them) and are answered with APIv2's snake_case fields, which the SDK camel-cases; the pay
 * and refund callbacks invoke the cloud function named at order/refund time with the
 * camel-cased APIv2 notify fields (no sign) and count only `{errcode: 0}` as received.
 */

import { createHash, randomBytes } from 'node:crypto';
import { sign, type WxParams, type WxParamsIn } from '../../cloudfunctions/shared/wxpay';
import { generateBill } from './bills';
import { type ApiPath, type Engine, type ForeignNotify, ResultFail, ReturnFail } from './engine';
import type { Ledger, PendingNotify, SimOrder, SimRefund } from './ledger';
import type { NotifyDelivery } from './notifier';
import { findView, type MerchantView, partnerHead, partnerView } from './partner';
import { compactTime, dashedTime } from './time';
import type { SimMerchant } from './verify';

/** The service provider cloudPay runs under, as callbacks show it (mchId 1800008281). */
export const CLOUDPAY_PROVIDER: SimMerchant = {
  appid: 'wxcloudpay00000sp1',
  mchId: '1800008281',
  // The simulator's stand-in for Tencent's key: it signs the `payment` the platform returns.
  apiKey: 'cloudpaySandboxServiceProviderK1',
  signType: 'MD5',
};

export interface SimCloudPayOptions {
  /** Merchants bound to the environment in the CloudBase console (设置 → 全局设置 → 添加商户号). */
  bound: readonly { subMchId: string; subAppid: string }[];
}

/** A cloudPay call as the emulator received it. */
export interface CloudPayCall {
  apiName: string;
  /** The request fields, snake_case, as the SDK sent them. */
  data: Record<string, unknown>;
  /** From apiOptions: set when the function called cloud.cloudPay({appid}) (shared environment). */
  appid?: string;
}

/** JSON for the SDK (camel-cased by it), or raw text (downloadBill's CSV). */
/** `hang`: the platform never answers (the SDK's, or the shop's, timeout decides). */
export type CloudPayAnswer = { json: Record<string, unknown> } | { text: string } | { hang: true };

export type FunctionInvoker = (name: string, event: Record<string, unknown>) => Promise<unknown>;

export interface CloudPaySide {
  /** Merchant views to register with the engine. */
  views: MerchantView[];
  call(c: CloudPayCall): CloudPayAnswer;
  payNotify(order: SimOrder, m: SimMerchant): ForeignNotify | undefined;
  refundNotify(refund: SimRefund, m: SimMerchant): ForeignNotify | undefined;
  deliver: NotifyDelivery;
  setInvoker(invoke: FunctionInvoker | undefined): void;
}

const CALLBACK_HOST = 'https://cloudpay.invalid';

function callbackUrl(envId: string, fn: string): string {
  return `${CALLBACK_HOST}/${encodeURIComponent(envId)}/${encodeURIComponent(fn)}`;
}

/** `env/function` from a callback URL, for the notify record and the delivery. */
function callbackTarget(url: string): string | undefined {
  if (!url.startsWith(`${CALLBACK_HOST}/`)) return undefined;
  return url.slice(CALLBACK_HOST.length + 1);
}

function toCamel(fields: WxParamsIn): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || v === null) continue;
    out[k.replace(/_[a-z]/g, (m) => m[1]!.toUpperCase())] = v;
  }
  return out;
}

/** A stable stand-in for the payer's openid under the provider's appid. */
function providerOpenid(openid: string): string {
  return `oSP${createHash('sha256').update(openid).digest('base64url').slice(0, 25)}`;
}

/** The v2 path whose faults a cloudPay API shares. */
const FAULT_PATHS: Readonly<Record<string, ApiPath>> = {
  unifiedOrder: '/pay/unifiedorder',
  queryOrder: '/pay/orderquery',
  closeOrder: '/pay/closeorder',
  refund: '/secapi/pay/refund',
  queryRefund: '/pay/refundquery',
  downloadBill: '/pay/downloadbill',
};

export function createCloudPaySide(o: {
  engine: () => Engine;
  ledger: Ledger;
  options: SimCloudPayOptions;
  now: () => number;
  /** SYSTEMERROR without effect, as on APIv2 (consumes systemErrorNext). */
  systemError: (path: ApiPath) => boolean;
  /** No answer at all, before any effect (timeoutRate), as on APIv2. */
  timeout?: (path: ApiPath) => boolean;
  /** The effect happens, the answer is lost (hangAfterEffectRate), as on APIv2. */
  hangAfterEffect?: (path: ApiPath) => boolean;
}): CloudPaySide {
  const provider: SimMerchant = {
    ...CLOUDPAY_PROVIDER,
    subMerchants: o.options.bound.map((b) => ({ ...b })),
  };
  const views = (provider.subMerchants ?? []).map((sub) => partnerView(provider, sub));
  let invoke: FunctionInvoker | undefined;

  const fail = (msg: string) => ({ json: { return_code: 'FAIL', return_msg: msg } });

  function str(v: unknown): string | undefined {
    if (typeof v === 'string' && v !== '') return v;
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
    return undefined;
  }

  function head(view: MerchantView): WxParamsIn {
    return {
      return_code: 'SUCCESS',
      return_msg: 'OK',
      ...partnerHead(view.partner!),
      nonce_str: randomBytes(8).toString('hex'),
    };
  }

  function run(view: MerchantView, path: Parameters<Engine['handle']>[0], p: WxParamsIn): CloudPayAnswer {
    const params: WxParams = {};
    for (const [k, v] of Object.entries(p))
      if (v !== undefined && v !== null && v !== '') params[k] = String(v);
    const out = o.engine().handle(path, params, view);
    if (out instanceof ReturnFail) return fail(out.returnMsg);
    if (out instanceof ResultFail) {
      return {
        json: { ...head(view), result_code: 'FAIL', err_code: out.errCode, err_code_des: out.errCodeDes },
      };
    }
    return { json: { ...head(view), result_code: 'SUCCESS', ...out } };
  }

  function call(c: CloudPayCall): CloudPayAnswer {
    const faultPath = FAULT_PATHS[c.apiName];
    if (faultPath && o.timeout?.(faultPath)) return { hang: true };
    const answer = answerCall(c);
    // The effect is in the ledger; the answer is lost.
    if (faultPath && 'json' in answer && o.hangAfterEffect?.(faultPath)) return { hang: true };
    return answer;
  }

  function answerCall(c: CloudPayCall): CloudPayAnswer {
    const d = c.data;
    const subMchId = str(d['sub_mch_id']);
    if (!subMchId) return fail('受理机构必须传入sub_mch_id');
    const view = findView(provider, subMchId, undefined);
    if (!view) return fail('受理关系不存在');
    // Shared environment (资源复用): the mini program's appid comes in apiOptions.
    if (c.appid && c.appid !== view.partner?.subAppid) return fail('appid与商户号的绑定关系不存在');
    if (!str(d['nonce_str'])) return fail('缺少参数nonce_str');
    const faultPath = FAULT_PATHS[c.apiName];
    if (faultPath && o.systemError(faultPath)) {
      return {
        json: {
          ...head(view),
          result_code: 'FAIL',
          err_code: 'SYSTEMERROR',
          err_code_des: '系统超时，请使用相同参数再次调用API',
        },
      };
    }
    switch (c.apiName) {
      case 'unifiedOrder': {
        const env = str(d['env_id']);
        const fn = str(d['function_name']);
        if (!env || !fn) return fail('缺少参数env_id或function_name');
        if (typeof d['total_fee'] !== 'number') return fail('total_fee必须是数字');
        const openid = str(d['sub_openid']) ?? str(d['openid']);
        if (!openid) return fail('缺少参数openid');
        const outTradeNo = str(d['out_trade_no']) ?? '';
        const existed = o.ledger.order(view.mchId, outTradeNo) !== undefined;
        const answer = run(view, '/pay/unifiedorder', {
          body: str(d['body']),
          out_trade_no: outTradeNo,
          total_fee: d['total_fee'],
          spbill_create_ip: str(d['spbill_create_ip']),
          notify_url: callbackUrl(env, fn),
          trade_type: str(d['trade_type']) ?? 'JSAPI',
          openid,
          time_expire: str(d['time_expire']),
          attach: str(d['attach']),
        });
        const order = o.ledger.order(view.mchId, outTradeNo);
        if (order && !existed) {
          order.api = 'cloudpay';
          o.ledger.putOrder(order);
        }
        if ('json' in answer && answer.json['result_code'] === 'SUCCESS') {
          const pay = {
            appId: view.appid,
            timeStamp: String(Math.floor(o.now() / 1000)),
            nonceStr: randomBytes(8).toString('hex'),
            package: `prepay_id=${String(answer.json['prepay_id'])}`,
            signType: 'MD5' as const,
          };
          answer.json['payment'] = { ...pay, paySign: sign(pay, provider.apiKey, 'MD5') };
        }
        return answer;
      }
      case 'queryOrder': {
        const answer = run(view, '/pay/orderquery', {
          out_trade_no: str(d['out_trade_no']),
          transaction_id: str(d['transaction_id']),
        });
        if ('json' in answer && typeof answer.json['openid'] === 'string') {
          const openid = answer.json['openid'];
          answer.json['sub_openid'] = openid;
          answer.json['openid'] = providerOpenid(openid);
        }
        return answer;
      }
      case 'closeOrder':
        return run(view, '/pay/closeorder', { out_trade_no: str(d['out_trade_no']) });
      case 'refund': {
        const env = str(d['env_id']);
        const fn = str(d['function_name']);
        if (!env || !fn) return fail('缺少参数env_id或function_name');
        const outRefundNo = str(d['out_refund_no']) ?? '';
        const existed = o.ledger.refund(view.mchId, outRefundNo) !== undefined;
        const answer = run(view, '/secapi/pay/refund', {
          out_trade_no: str(d['out_trade_no']),
          transaction_id: str(d['transaction_id']),
          out_refund_no: outRefundNo,
          total_fee: str(d['total_fee']),
          refund_fee: str(d['refund_fee']),
          refund_desc: str(d['refund_desc']),
          notify_url: callbackUrl(env, fn),
        });
        const r = o.ledger.refund(view.mchId, outRefundNo);
        if (r && !existed) {
          r.api = 'cloudpay';
          o.ledger.putRefund(r);
        }
        return answer;
      }
      case 'queryRefund':
        return run(view, '/pay/refundquery', {
          out_refund_no: str(d['out_refund_no']),
          refund_id: str(d['refund_id']),
          out_trade_no: str(d['out_trade_no']),
          transaction_id: str(d['transaction_id']),
        });
      case 'downloadBill': {
        const bill = generateBill(
          o.ledger,
          view,
          { bill_date: str(d['bill_date']) ?? '', bill_type: str(d['bill_type']) ?? 'ALL' },
          o.now(),
        );
        return 'returnMsg' in bill ? fail(bill.returnMsg) : { text: bill.body.toString('utf8') };
      }
      default:
        return fail(`cloudPay.${c.apiName} is not simulated`);
    }
  }

  function payNotify(order: SimOrder, m: SimMerchant): ForeignNotify | undefined {
    const target = callbackTarget(order.notifyUrl);
    const view = m as MerchantView;
    if (order.api !== 'cloudpay' || !target || !view.partner) return undefined;
    // The APIv2 notify fields, camel-cased, amounts as numbers, and no sign: the callback
    // example in the 云托管 payment doc.
    const event = toCamel({
      return_code: 'SUCCESS',
      ...partnerHead(view.partner),
      nonce_str: randomBytes(8).toString('hex'),
      result_code: 'SUCCESS',
      openid: providerOpenid(order.openid),
      is_subscribe: 'N',
      sub_openid: order.openid,
      sub_is_subscribe: 'N',
      trade_type: 'JSAPI',
      bank_type: 'OTHERS',
      fee_type: 'CNY',
      transaction_id: order.transactionId,
      out_trade_no: order.outTradeNo,
      time_end: compactTime(order.paidAtMs!),
      attach: order.attach,
    });
    event['totalFee'] = order.totalFee;
    event['cashFee'] = order.totalFee;
    return { url: target, body: JSON.stringify(event), transport: 'function' };
  }

  function refundNotify(r: SimRefund, m: SimMerchant): ForeignNotify | undefined {
    const target = r.notifyUrl ? callbackTarget(r.notifyUrl) : undefined;
    const view = m as MerchantView;
    if (r.api !== 'cloudpay' || !target || !view.partner || r.status === 'PROCESSING') return undefined;
    // Undocumented by the platform; the APIv2 refund notify with req_info decrypted,
    // camel-cased, is what handlers in the wild read (outRefundNo, refundStatus …).
    const event = toCamel({
      return_code: 'SUCCESS',
      ...partnerHead(view.partner),
      nonce_str: randomBytes(8).toString('hex'),
      out_refund_no: r.outRefundNo,
      out_trade_no: r.outTradeNo,
      refund_id: r.refundId,
      transaction_id: r.transactionId,
      refund_status: r.status,
      success_time:
        r.status === 'SUCCESS' && r.settledAtMs !== undefined ? dashedTime(r.settledAtMs) : undefined,
      refund_recv_accout: '支付用户零钱',
      refund_account: 'REFUND_SOURCE_RECHARGE_FUNDS',
      refund_request_source: 'API',
    });
    event['refundFee'] = r.refundFee;
    event['totalFee'] = r.totalFee;
    event['settlementRefundFee'] = r.refundFee;
    event['settlementTotalFee'] = r.totalFee;
    return { url: target, body: JSON.stringify(event), transport: 'function' };
  }

  async function deliver(n: PendingNotify): Promise<{ body: string; acknowledged: boolean }> {
    if (!invoke) throw new Error('no function runtime to call back');
    const [, fn] = n.url.split('/').map(decodeURIComponent);
    if (!fn) throw new Error(`bad callback target ${n.url}`);
    const result = await invoke(fn, JSON.parse(n.body) as Record<string, unknown>);
    // "0 表示正常,其他表示异常,异常时支付回调会持续重试最多两天".
    const ok =
      typeof result === 'object' && result !== null && (result as { errcode?: unknown }).errcode === 0;
    return { body: JSON.stringify(result ?? null), acknowledged: ok };
  }

  return {
    views,
    call,
    payNotify,
    refundNotify,
    deliver,
    setInvoker(fn) {
      invoke = fn;
    },
  };
}
