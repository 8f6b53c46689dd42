/**
 * The APIv3 crypto, pure and HTTP-free (node:crypto only, Node 16 safe):
 * - the request signature: SHA256withRSA (PKCS#1 v1.5) over five `\n`-terminated lines
 *   (method, path+query, timestamp, nonce, body), in a `WECHATPAY2-SHA256-RSA2048` header;
 * - answer and notify verification over three lines (timestamp, nonce, raw body);
 * - AEAD_AES_256_GCM for notify resources (key: the 32-byte APIv3 key; IV: the 12-character
 *   nonce; AAD: associated_data; the last 16 bytes of the ciphertext are the tag);
 * - the wx.requestPayment paySign over appId, timeStamp, nonceStr and package.
 * https://wechatpay-api.gitbook.io/wechatpay-api-v3/qian-ming-zhi-nan-1/qian-ming-sheng-cheng
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  type KeyObject,
  sign as rsaSign,
  verify as rsaVerify,
} from 'node:crypto';
import { CryptoError } from '../../errors';

export const AUTH_SCHEMA = 'WECHATPAY2-SHA256-RSA2048';
const GCM_TAG_BYTES = 16;

/** `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n`: the body is the exact JSON bytes sent (empty for GET). */
export function requestMessage(
  method: string,
  pathAndQuery: string,
  timestamp: string,
  nonce: string,
  body: string,
): string {
  return `${method.toUpperCase()}\n${pathAndQuery}\n${timestamp}\n${nonce}\n${body}\n`;
}

/**
 * `TIMESTAMP\nNONCE\nBODY\n` over the body bytes exactly as received. Built as bytes: decoding
 * and re-encoding a body is how verification breaks in the wild (a BOM, an invalid byte).
 */
export function answerMessage(timestamp: string, nonce: string, body: Uint8Array | string): Buffer {
  return Buffer.concat([
    Buffer.from(`${timestamp}\n${nonce}\n`, 'utf8'),
    typeof body === 'string'
      ? Buffer.from(body, 'utf8')
      : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
    Buffer.from('\n', 'utf8'),
  ]);
}

/** Base64 SHA256withRSA (PKCS#1 v1.5). */
export function signSha256Rsa(message: string | Uint8Array, privateKey: KeyObject): string {
  return rsaSign(
    'sha256',
    typeof message === 'string' ? Buffer.from(message, 'utf8') : message,
    privateKey,
  ).toString('base64');
}

/** True when `signature` (Base64) is a SHA256withRSA signature of `message` by `publicKey`. */
export function verifySha256Rsa(
  message: string | Uint8Array,
  signature: string,
  publicKey: KeyObject,
): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(signature)) return false;
  try {
    return rsaVerify(
      'sha256',
      typeof message === 'string' ? Buffer.from(message, 'utf8') : message,
      publicKey,
      Buffer.from(signature, 'base64'),
    );
  } catch {
    return false;
  }
}

export interface AuthorizationFields {
  mchid: string;
  nonce_str: string;
  timestamp: string;
  serial_no: string;
  signature: string;
}

/** The Authorization header value; the field order is free ("无顺序要求"). */
export function authorizationHeader(f: AuthorizationFields): string {
  return `${AUTH_SCHEMA} mchid="${f.mchid}",nonce_str="${f.nonce_str}",timestamp="${f.timestamp}",serial_no="${f.serial_no}",signature="${f.signature}"`;
}

/** Reads an Authorization header (any field order); undefined unless all five fields are there once. */
export function parseAuthorizationHeader(value: string | undefined): AuthorizationFields | undefined {
  if (!value?.startsWith(`${AUTH_SCHEMA} `)) return undefined;
  const out: Record<string, string> = {};
  const re = /\s*([a-z_]+)="([^"]*)"\s*(?:,|$)/gy;
  const rest = value.slice(AUTH_SCHEMA.length + 1);
  re.lastIndex = 0;
  let consumed = 0;
  for (let m = re.exec(rest); m; m = re.exec(rest)) {
    if (m[1]! in out) return undefined;
    out[m[1]!] = m[2]!;
    consumed = re.lastIndex;
  }
  if (consumed !== rest.length) return undefined;
  const keys: (keyof AuthorizationFields)[] = ['mchid', 'nonce_str', 'timestamp', 'serial_no', 'signature'];
  if (!keys.every((k) => typeof out[k] === 'string' && out[k] !== '')) return undefined;
  return out as unknown as AuthorizationFields;
}

/** The APIv3 key as AES-256 key bytes: exactly 32 bytes of UTF-8, never padded or hashed. */
export function apiV3KeyBytes(apiV3Key: string): Buffer {
  const key = Buffer.from(apiV3Key ?? '', 'utf8');
  if (key.length !== 32) {
    throw new CryptoError(
      'APIV3_KEY_LENGTH',
      `the APIv3 key must be 32 bytes, got ${key.length} (it is not the APIv2 key nor a certificate serial)`,
    );
  }
  return key;
}

export interface EncryptedResource {
  algorithm?: string;
  ciphertext: string;
  associated_data?: string;
  nonce: string;
  original_type?: string;
}

/**
 * Opens an AEAD_AES_256_GCM resource. `final()` runs the tag check: a library that skips it
 * accepts any forged ciphertext (wechatpay-node-v3 ≥ 2.2.0 did exactly that).
 */
export function aesGcmOpen(resource: EncryptedResource, apiV3Key: string): Buffer {
  const key = apiV3KeyBytes(apiV3Key);
  if (resource.algorithm !== undefined && resource.algorithm !== 'AEAD_AES_256_GCM') {
    throw new CryptoError('RESOURCE_ALGORITHM', `unsupported resource algorithm ${resource.algorithm}`);
  }
  if (typeof resource.ciphertext !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(resource.ciphertext)) {
    throw new CryptoError('RESOURCE_INVALID', 'resource.ciphertext is missing or not base64');
  }
  if (typeof resource.nonce !== 'string' || resource.nonce.length === 0) {
    throw new CryptoError('RESOURCE_INVALID', 'resource.nonce is missing');
  }
  const data = Buffer.from(resource.ciphertext, 'base64');
  if (data.length < GCM_TAG_BYTES)
    throw new CryptoError('RESOURCE_INVALID', 'resource.ciphertext is too short');
  try {
    const d = createDecipheriv('aes-256-gcm', key, Buffer.from(resource.nonce, 'utf8'), {
      authTagLength: GCM_TAG_BYTES,
    });
    d.setAuthTag(data.subarray(data.length - GCM_TAG_BYTES));
    d.setAAD(Buffer.from(resource.associated_data ?? '', 'utf8'));
    return Buffer.concat([d.update(data.subarray(0, data.length - GCM_TAG_BYTES)), d.final()]);
  } catch (cause) {
    throw new CryptoError(
      'RESOURCE_DECRYPT',
      'resource does not decrypt with this APIv3 key (wrong key, or the ciphertext was altered)',
      { cause },
    );
  }
}

/** The inverse, for the simulator and tests: Base64 of ciphertext ‖ tag. */
export function aesGcmSeal(
  plaintext: string | Uint8Array,
  apiV3Key: string,
  nonce: string,
  associatedData: string,
): string {
  const c = createCipheriv('aes-256-gcm', apiV3KeyBytes(apiV3Key), Buffer.from(nonce, 'utf8'), {
    authTagLength: GCM_TAG_BYTES,
  });
  c.setAAD(Buffer.from(associatedData, 'utf8'));
  const body = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
  return Buffer.concat([c.update(body), c.final(), c.getAuthTag()]).toString('base64');
}

/** `appId\ntimeStamp\nnonceStr\npackage\n`: signType is sent but not signed ("signType参数不参与签名"). */
export function paySignMessage(appId: string, timeStamp: string, nonceStr: string, pkg: string): string {
  return `${appId}\n${timeStamp}\n${nonceStr}\n${pkg}\n`;
}

export function sha1Hex(data: Uint8Array): string {
  return createHash('sha1').update(data).digest('hex');
}
