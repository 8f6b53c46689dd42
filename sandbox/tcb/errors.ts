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
