import { createCipheriv, createDecipheriv, createHash } from 'node:crypto';
import { CryptoError } from '../errors';
import type { WxParams, WxParamsIn } from './types';
import { parseXml, toXml } from './xml';

// AES-256-ECB needs 32 bytes: the ASCII of the lower-case hex md5 of the APIv2 key,
// not the raw 16-byte digest (official 退款结果通知 doc, step 2).
function reqInfoKey(apiKey: string): Buffer {
  if (!apiKey) throw new CryptoError('WXPAY_KEY_MISSING', 'the APIv2 key is empty: set WXPAY_API_KEY');
  // Stryker disable next-line StringLiteral: utf8 and, for hex digits, ascii are the defaults (equivalent).
  return Buffer.from(createHash('md5').update(apiKey, 'utf8').digest('hex').toLowerCase(), 'ascii');
}

/** Decrypts a refund notify's `req_info` and parses its `<root>` fields. */
export function decryptReqInfo(reqInfo: string, apiKey: string): WxParams {
  const key = reqInfoKey(apiKey);
  // Stryker disable next-line StringLiteral: any stand-in that is not base64 is refused alike (equivalent).
  const text = typeof reqInfo === 'string' ? reqInfo.trim() : '';
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) {
    throw new CryptoError('REQ_INFO_INVALID', 'req_info is missing or not base64');
  }
  const data = Buffer.from(text, 'base64');
  if (data.length === 0 || data.length % 16 !== 0) {
    throw new CryptoError('REQ_INFO_INVALID', 'req_info length is not a multiple of the AES block size');
  }
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-ecb', key, null);
    decipher.setAutoPadding(true);
    plain = Buffer.concat([decipher.update(data), decipher.final()]);
  } catch (cause) {
    throw new CryptoError('REQ_INFO_DECRYPT', 'req_info does not decrypt with this API key', { cause });
  }
  try {
    return parseXml(plain, { root: 'root' });
  } catch (cause) {
    // A wrong key passes PKCS#7 unpadding about once in 256 tries; its garbage fails here.
    throw new CryptoError('REQ_INFO_DECRYPT', 'req_info decrypted to something that is not <root> XML', {
      cause,
    });
  }
}

/** The inverse, for the simulator and tests: what WeChat puts in `req_info`. */
export function encryptReqInfo(fields: WxParamsIn, apiKey: string): string {
  const plain = toXml(fields, 'root');
  const cipher = createCipheriv('aes-256-ecb', reqInfoKey(apiKey), null);
  // Stryker disable next-line StringLiteral: utf8 is update()'s default (equivalent).
  return Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]).toString('base64');
}
