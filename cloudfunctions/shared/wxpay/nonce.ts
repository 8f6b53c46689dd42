import { randomBytes } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** 32 characters from a CSPRNG (nonce_str allows at most 32). */
export function nonceStr(length = 32): string {
  const out: string[] = [];
  // Rejection sampling keeps every character equally likely (248 = 4 * 62).
  while (out.length < length) {
    // Twice the bytes needed usually suffices; fewer only means another round (equivalent).
    // Stryker disable next-line ArithmeticOperator: equivalent, see above.
    for (const b of randomBytes(length * 2)) {
      if (b < 248 && out.length < length) out.push(ALPHABET[b % 62]!);
    }
  }
  return out.join('');
}
