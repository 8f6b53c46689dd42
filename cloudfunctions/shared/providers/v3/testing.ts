/**
 * Builders for genuinely signed and encrypted APIv3 messages, so tests and the simulator
 * speak with real signatures instead of switching verification off. They need WeChat Pay's
 * private key, which only a simulator or a test holds.
 */
import { createHash, type KeyObject, randomBytes } from 'node:crypto';
import { aesGcmSeal, answerMessage, signSha256Rsa } from './crypto';

export interface V3Signer {
  /** `PUB_KEY_ID_…` or a platform certificate serial: goes out as Wechatpay-Serial. */
  serial: string;
  privateKey: KeyObject;
}

export interface SignedMessage {
  headers: Record<string, string>;
  body: string;
}

const SUMMARIES: Readonly<Record<string, string>> = {
  'TRANSACTION.SUCCESS': '支付成功',
  'REFUND.SUCCESS': '退款成功',
  'REFUND.ABNORMAL': '退款异常',
  'REFUND.CLOSED': '退款关闭',
};

/** Wechatpay-* headers for `body` as WeChat signs an answer or a notify. */
export function signAnswerForTest(
  signer: V3Signer,
  body: string,
  opts: { timestampS: number; nonce?: string; signatureType?: boolean },
): Record<string, string> {
  const timestamp = String(opts.timestampS);
  const nonce = opts.nonce ?? randomBytes(16).toString('hex');
  const headers: Record<string, string> = {
    'Wechatpay-Timestamp': timestamp,
    'Wechatpay-Nonce': nonce,
    'Wechatpay-Serial': signer.serial,
    'Wechatpay-Signature': signSha256Rsa(answerMessage(timestamp, nonce, body), signer.privateKey),
  };
  if (opts.signatureType) headers['Wechatpay-Signature-Type'] = 'WECHATPAY2-SHA256-RSA2048';
  return headers;
}

/** The JSON envelope of a notify, its resource encrypted with the APIv3 key. */
export function notifyBodyForTest(
  eventType: string,
  resource: Record<string, unknown>,
  apiV3Key: string,
  opts: { id?: string; createTime?: string; nonce?: string } = {},
): string {
  const plaintext = JSON.stringify(resource);
  const nonce = opts.nonce ?? randomBytes(6).toString('hex');
  const originalType = eventType.startsWith('REFUND.') ? 'refund' : 'transaction';
  return JSON.stringify({
    id: opts.id ?? `EV-${createHash('sha1').update(plaintext).digest('hex').slice(0, 24)}`,
    create_time: opts.createTime ?? '2026-01-01T12:00:00+08:00',
    resource_type: 'encrypt-resource',
    event_type: eventType,
    summary: SUMMARIES[eventType] ?? eventType,
    resource: {
      original_type: originalType,
      algorithm: 'AEAD_AES_256_GCM',
      ciphertext: aesGcmSeal(plaintext, apiV3Key, nonce, originalType),
      associated_data: originalType,
      nonce,
    },
  });
}

/** A complete notify: encrypted body plus the headers WeChat sends with it. */
export function signV3NotifyForTest(
  signer: V3Signer,
  apiV3Key: string,
  eventType: string,
  resource: Record<string, unknown>,
  opts: { timestampS: number; nonce?: string; id?: string },
): SignedMessage {
  const body = notifyBodyForTest(eventType, resource, apiV3Key, opts.id ? { id: opts.id } : {});
  return {
    body,
    headers: {
      ...signAnswerForTest(signer, body, {
        timestampS: opts.timestampS,
        ...(opts.nonce ? { nonce: opts.nonce } : {}),
        signatureType: true,
      }),
      'Content-Type': 'application/json',
    },
  };
}
