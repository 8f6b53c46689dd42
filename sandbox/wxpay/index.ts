// The local WeChat Pay APIv2 simulator (docs/ARCHITECTURE.md §7).
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
export type { LedgerData, PendingNotify, RefundStatus, SimOrder, SimRefund, TradeState } from './ledger';
export { isSuccessReply, NOTIFY_RETRY_SCHEDULE_S, type NotifyRecord } from './notifier';
export {
  type PayRequest,
  startWxPaySimulator,
  type WxPaySimulator,
  type WxPaySimulatorOptions,
} from './server';
export {
  RETURN_MSG,
  type RequestRejection,
  type SimMerchant,
  type VerifiedRequest,
  verifyPayNotify,
  verifyRequest,
} from './verify';
