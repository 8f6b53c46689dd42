/**
 * What the console page shares with the mini-program, bundled for the browser when the
 * console starts (served as /console/shared.js): the Chinese message of every error code, the
 * refund form's checks, the requestId of a submission, the state labels and what each refund
 * state asks of the merchant. One source, so the console and the phone never disagree.
 */
export { ERROR_MESSAGES, NETWORK_MESSAGE, rateLimitText } from '../../miniprogram/utils/errors';
export { ORDER_STATUS_LABEL, REFUND_STATUS_LABEL } from '../../miniprogram/utils/labels';
export { fenToYuan } from '../../miniprogram/utils/money';
export { CONTACT_MAX, checkRefundForm, REASON_MAX } from '../../miniprogram/utils/refund-form';
export {
  decisionResult,
  flagNote,
  historyRows,
  MANUAL_REFUND_SCREEN,
  merchantGuide,
  REJECT_NEEDS_COMMENT,
  shopperNote,
} from '../../miniprogram/utils/refund-guide';
export { newRequestId, submissionFor } from '../../miniprogram/utils/request-id';
