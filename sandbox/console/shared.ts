/**
 * What the console page shares with the mini-program, bundled for the browser when the
 * console starts (served as /console/shared.js): the Chinese message of every error code, the
 * refund form's checks, the requestId of a submission, the state labels, what each refund
 * state asks of the merchant, and each bill-check difference with what to do about it. One
 * source, so the console and the phone never disagree.
 */
export { billCheckRow, yesterdayBeijing } from '../../miniprogram/utils/billcheck';
export { CANCEL_OUTCOME_MESSAGE } from '../../miniprogram/utils/confirm';
export { ERROR_MESSAGES, NETWORK_MESSAGE, rateLimitText } from '../../miniprogram/utils/errors';
export {
  ORDER_DISPLAY_LABEL,
  ORDER_STATUS_LABEL,
  orderDisplay,
  REFUND_STATUS_LABEL,
} from '../../miniprogram/utils/labels';
export { fenToYuan, parseYuanToFen } from '../../miniprogram/utils/money';
export { CONTACT_MAX, checkRefundForm, REASON_MAX } from '../../miniprogram/utils/refund-form';
export {
  confirmDecision,
  decisionResult,
  flagNote,
  historyRows,
  MANUAL_REFUND_SCREEN,
  merchantGuide,
  REJECT_NEEDS_COMMENT,
  shopperNote,
} from '../../miniprogram/utils/refund-guide';
export { newRequestId, submissionFor } from '../../miniprogram/utils/request-id';
