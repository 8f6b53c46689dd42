// The local WeChat Pay simulator: APIv2, APIv3 (v3.ts) and cloudPay (cloudpay.ts) over one ledger.

export {
  CLOUDPAY_PROVIDER,
  type CloudPayAnswer,
  type CloudPayCall,
  type FunctionInvoker,
  type SimCloudPayOptions,
} from './cloudpay';
export {
  API_PATHS,
  type ApiPath,
  DEFAULT_FAULTS,
  type Faults,
  MAX_REFUNDS_PER_ORDER,
  type PayOutcome,
  PREPAY_TTL_MS,
  type Rate,
} from './engine';
export type {
  LedgerData,
  NotifyTransport,
  PendingNotify,
  RefundStatus,
  SimApi,
  SimOrder,
  SimRefund,
  TradeState,
} from './ledger';
export { isSuccessReply, NOTIFY_RETRY_SCHEDULE_S, type NotifyRecord } from './notifier';
export {
  type PayRequest,
  startWxPaySimulator,
  type WxPaySimulator,
  type WxPaySimulatorOptions,
} from './server';
export type { SimV3Options } from './v3';
export { ensureV3Material, type V3Material } from './v3keys';
export {
  RETURN_MSG,
  type RequestRejection,
  type SimMerchant,
  type SubMerchant,
  type VerifiedRequest,
  verifyPayNotify,
  verifyRequest,
} from './verify';
