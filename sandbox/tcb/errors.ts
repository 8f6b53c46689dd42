/**
 * Server-side error codes exactly as the TCB admin API spells them. wx-server-sdk maps the
 * string `code` to its numeric errCode through TCB_ERR_CODE (wx-server-sdk/index.js,
 * error.config.ts) and appends `message` after "<api>:fail <errCode> <description>. ", so the
 * messages below are what a developer sees at the end of errMsg on the real platform.
 *
 * Codes that TCB_ERR_CODE does not list (the transaction ones, "already exists") surface as
 * -501001 "resource system error", as they do in production.
 */
export type TcbErrorCode =
  | 'DATABASE_REQUEST_FAILED' // -502001
  | 'DATABASE_INVALID_OPERRATOR' // -502002 (the typo is the SDK's key)
  | 'DATABASE_COLLECTION_NOT_EXIST' // -502005
  | 'DATABASE_COLLECTION_ALREADY_EXIST' // -501001
  | 'DATABASE_TRANSACTION_CONFLICT' // -501001 (runTransaction retries on this code at commit)
  | 'DATABASE_TRANSACTION_FAIL' // -501001
  | 'DATABASE_TIMEOUT' // -501001 (not in TCB_ERR_CODE)
  | 'SYS_ERR' // -501001
  | 'SERVER_TIMEOUT' // -501002
  | 'EXCEED_REQUEST_LIMIT' // -501003
  | 'EXCEED_CONCURRENT_REQUEST_LIMIT' // -501004
  | 'INVALID_PARAM' // -501007
  | 'INVALID_ACTION'; // -501001

export class TcbError extends Error {
  constructor(
    readonly code: TcbErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const SUFFIX = 'Please check your request, but if the problem persists, contact us.';

export const tcbErrors = {
  collectionNotExist: (name: string) =>
    new TcbError('DATABASE_COLLECTION_NOT_EXIST', `[ResourceNotFound] Db or Table not exist: ${name}.`),
  collectionExists: () =>
    new TcbError('DATABASE_COLLECTION_ALREADY_EXIST', '[ResourceUnavailable.ResourceExist] Table exist.'),
  /** Mongo write errors arrive wrapped the way TCB wraps them (quoted in public repos, see reference §1.3/§1.7). */
  writeFailed: (mongoMessage: string) =>
    new TcbError(
      'DATABASE_REQUEST_FAILED',
      `[FailedOperation] multiple write errors: [{write errors: [{${mongoMessage}}]}, {write concern errors:[]}]`,
    ),
  requestFailed: (detail: string) => new TcbError('DATABASE_REQUEST_FAILED', `[FailedOperation] ${detail}`),
  invalidOperator: (detail: string) =>
    new TcbError('DATABASE_INVALID_OPERRATOR', `[InvalidParameter] ${detail}. ${SUFFIX}`),
  invalidParam: (detail: string) => new TcbError('INVALID_PARAM', `[InvalidParameter] ${detail}`),
  // Texts from the official @cloudbase/node-sdk transaction integration tests.
  transactionConflict: () =>
    new TcbError(
      'DATABASE_TRANSACTION_CONFLICT',
      `[ResourceUnavailable.TransactionConflict] Transaction is conflict, maybe resource operated by others. ${SUFFIX}`,
    ),
  transactionNotExist: () =>
    new TcbError(
      'DATABASE_TRANSACTION_FAIL',
      `[ResourceUnavailable.TransactionNotExist] Transaction does not exist on the server, transaction must be commit or abort in 30 seconds. ${SUFFIX}`,
    ),
  unsupportedAction: (action: string) =>
    new TcbError('INVALID_ACTION', `[InvalidAction] the local emulator does not implement ${action}`),
};

/**
 * The transient failures a function meets in production, by name, for fault injection
 * (faults.ts). Where a message is known from real logs it is quoted; otherwise it is the
 * meaning CloudBase's error-code page gives (https://docs.cloudbase.net/error-code/basic),
 * under the bracketed class the platform uses. The SDK turns each into
 * "<api>:fail <errCode> <description>. <message>" with the errCode in the comment.
 */
export const TRANSIENT_ERRORS = {
  /** -501001. Quoted from a production log (collection.aggregate:fail … DATABASE_TIMEOUT). */
  timeout: () =>
    new TcbError(
      'DATABASE_TIMEOUT',
      '[FailedOperation.Timeout] Execution request timeout, Please check optimize your request(such as index), but if the problem persists, contact us.',
    ),
  /** -501001 */
  systemError: () => new TcbError('SYS_ERR', '[InternalError] System internal exception.'),
  /** -501002 */
  serverTimeout: () => new TcbError('SERVER_TIMEOUT', '[InternalError.Timeout] Service response timeout.'),
  /** -501003 */
  requestLimit: () =>
    new TcbError('EXCEED_REQUEST_LIMIT', '[LimitExceeded] Request count exceeds the environment quota.'),
  /** -501004 */
  concurrencyLimit: () =>
    new TcbError(
      'EXCEED_CONCURRENT_REQUEST_LIMIT',
      '[LimitExceeded] Concurrent requests exceed the environment quota.',
    ),
  /** -502001, MongoDB's own WriteConflict text in TCB's write-error wrapping. */
  writeConflict: () =>
    tcbErrors.writeFailed(
      'WriteConflict error: this operation conflicted with another operation. Please retry your operation or multi-document transaction.',
    ),
  /** -501001: wx-server-sdk rewraps it when a single write inside a transaction conflicts. */
  transactionConflict: () => tcbErrors.transactionConflict(),
} as const;

export type TransientErrorName = keyof typeof TRANSIENT_ERRORS;
