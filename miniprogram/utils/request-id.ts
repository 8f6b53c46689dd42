/**
 * applyRefund's idempotency key. The client makes one per form submission and sends the same
 * one again when it retries that submission (a double tap, a retry after a lost answer): the
 * server then answers with the refund it already made instead of making a second one.
 */

/** What the server accepts: 8–64 of [A-Za-z0-9_-]. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';

/**
 * A key unique among one shopper's submissions: the time in ms (base 36) and 72 random bits.
 * Math.random is enough here: the key is no secret, it only has to differ between two
 * submissions of the same shopper, and the mini-program engine has no synchronous crypto.
 */
export function newRequestId(random: () => number = Math.random, nowMs: number = Date.now()): string {
  let tail = '';
  for (let i = 0; i < 12; i++) tail += ALPHABET[Math.floor(random() * 64) % 64];
  return `${Math.max(0, Math.trunc(nowMs)).toString(36)}${tail}`;
}

/** One submission of a form: the key and the field values it was made for. */
export interface Submission {
  requestId: string;
  fingerprint: string;
}

/**
 * The submission to send now. Sending the same values again (after an error or a lost answer)
 * is a retry of the previous submission and keeps its key; changed values are a new
 * submission with a new key, so the server never answers them with the earlier refund.
 */
export function submissionFor(
  previous: Submission | null | undefined,
  values: readonly unknown[],
  make: () => string = newRequestId,
): Submission {
  const fingerprint = JSON.stringify(values);
  if (previous && previous.fingerprint === fingerprint) return previous;
  return { requestId: make(), fingerprint };
}
