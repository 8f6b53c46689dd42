/**
 * One error base for the whole backend. `code` is stable and is what callers, the
 * mini-program and tests switch on; `message` is for people. Secrets never go in either.
 */
export class AppError extends Error {
  readonly code: string;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: string,
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details;
  }
}

/** Malformed or hostile XML (notify bodies, API responses). */
export class XmlError extends AppError {}

/** A signature, decryption or key problem in the APIv2 codec. */
export class CryptoError extends AppError {}

/** A downloadbill body that is not in WeChat's CSV format. */
export class BillError extends AppError {}

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}
