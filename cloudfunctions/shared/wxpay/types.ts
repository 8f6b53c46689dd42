export type SignType = 'MD5' | 'HMAC-SHA256';

export const SIGN_TYPES: readonly SignType[] = ['MD5', 'HMAC-SHA256'];

/** APIv2 parameters as they travel: flat, string-valued. Numbers are accepted on the way out. */
export type WxParams = Record<string, string>;
export type WxParamsIn = Record<string, string | number | undefined | null>;

export function isSignType(v: unknown): v is SignType {
  return v === 'MD5' || v === 'HMAC-SHA256';
}
