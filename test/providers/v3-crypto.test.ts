/** The APIv3 crypto pinned to the published vectors (see vectors.ts for where each comes from). */
import { createCipheriv, createPrivateKey, createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  aesGcmOpen,
  aesGcmSeal,
  answerMessage,
  authorizationHeader,
  parseAuthorizationHeader,
  paySignMessage,
  requestMessage,
  signSha256Rsa,
  verifySha256Rsa,
} from '../../cloudfunctions/shared/providers/v3/crypto';
import {
  GO_SDK_TEST_KEY,
  V1_SIGNATURE,
  V2_NOTIFY,
  V4_AES,
  V5_AES,
  V6,
  V7_NOTIFY,
} from '../fixtures/wechatpay-v3-vectors';

const privateKey = createPrivateKey(GO_SDK_TEST_KEY);
const publicKey = createPublicKey(privateKey);

describe('APIv3 signatures', () => {
  it('signs "source" exactly as the official Go SDK test expects (V1)', () => {
    expect(signSha256Rsa('source', privateKey)).toBe(V1_SIGNATURE);
  });

  it('builds the five-line request message and signs the doc example to the pinned value (V6)', () => {
    const a = V6.authorization;
    const message = requestMessage(a.method, a.url, a.timestamp, a.nonce, '');
    expect(message).toBe('GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n');
    expect(signSha256Rsa(message, privateKey)).toBe(a.signature);
  });

  it('makes the paySign of the doc example over four newline-terminated lines (V6)', () => {
    const p = V6.paySign;
    const message = paySignMessage(p.appId, p.timeStamp, p.nonceStr, p.package);
    expect(message).toBe(`${p.appId}\n${p.timeStamp}\n${p.nonceStr}\n${p.package}\n`);
    expect(signSha256Rsa(message, privateKey)).toBe(p.signature);
  });

  it('verifies the Go SDK notify signature over timestamp, nonce and the raw body (V2)', () => {
    const h = V2_NOTIFY.headers;
    const msg = answerMessage(h['Wechatpay-Timestamp'], h['Wechatpay-Nonce'], Buffer.from(V2_NOTIFY.body));
    expect(verifySha256Rsa(msg, h['Wechatpay-Signature'], publicKey)).toBe(true);
    // One changed byte of the body (a space added) and it no longer verifies.
    const altered = answerMessage(
      h['Wechatpay-Timestamp'],
      h['Wechatpay-Nonce'],
      V2_NOTIFY.body.replace('{"id"', '{ "id"'),
    );
    expect(verifySha256Rsa(altered, h['Wechatpay-Signature'], publicKey)).toBe(false);
  });

  it('refuses a WECHATPAY/SIGNTEST/ probe and non-Base64 signatures without throwing', () => {
    expect(verifySha256Rsa('x', `WECHATPAY/SIGNTEST/${V1_SIGNATURE}`, publicKey)).toBe(false);
    expect(verifySha256Rsa('x', 'not base64!', publicKey)).toBe(false);
  });

  it('writes and reads the Authorization header, in any field order', () => {
    const f = {
      mchid: '1900000001',
      nonce_str: 'n1',
      timestamp: '1554208460',
      serial_no: 'ABC',
      signature: 'c2ln',
    };
    expect(authorizationHeader(f)).toBe(
      'WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="n1",timestamp="1554208460",serial_no="ABC",signature="c2ln"',
    );
    expect(parseAuthorizationHeader(authorizationHeader(f))).toEqual(f);
    // axios-plugin's order: mchid, serial_no, timestamp, nonce_str, signature.
    expect(
      parseAuthorizationHeader(
        'WECHATPAY2-SHA256-RSA2048 mchid="1900000001",serial_no="ABC",timestamp="1554208460",nonce_str="n1",signature="c2ln"',
      ),
    ).toEqual(f);
    expect(parseAuthorizationHeader('WECHATPAY2-SHA256-RSA2048 mchid="1",mchid="2"')).toBeUndefined();
    expect(parseAuthorizationHeader('Bearer x')).toBeUndefined();
  });
});

describe('AEAD_AES_256_GCM resources', () => {
  it('decrypts the pinned AES-256 vector with a 12-character nonce (V5) and seals it back', () => {
    const v = V5_AES;
    expect(
      aesGcmOpen({ ciphertext: v.ciphertext, nonce: v.nonce, associated_data: v.aad }, v.key).toString(),
    ).toBe(v.plaintext);
    expect(aesGcmSeal(v.plaintext, v.key, v.nonce, v.aad)).toBe(v.ciphertext);
  });

  it('reads the axios-plugin vectors made with a 16-byte IV (V4)', () => {
    for (const c of [V4_AES.hello, V4_AES.empty]) {
      expect(
        aesGcmOpen(
          { ciphertext: c.ciphertext, nonce: V4_AES.iv, associated_data: c.aad },
          V4_AES.key,
        ).toString(),
      ).toBe(c.plaintext);
    }
  });

  it('decrypts the full TRANSACTION.SUCCESS resource (V7)', () => {
    const resource = JSON.parse(V7_NOTIFY.body).resource;
    expect(aesGcmOpen(resource, V7_NOTIFY.apiV3Key).toString()).toBe(V7_NOTIFY.plaintext);
  });

  it('refuses a ciphertext with one Base64 character changed: the tag check runs', () => {
    const resource = JSON.parse(V7_NOTIFY.body).resource;
    const c: string = resource.ciphertext;
    const flipped = `${c.slice(0, 10)}${c[10] === 'A' ? 'B' : 'A'}${c.slice(11)}`;
    expect(() => aesGcmOpen({ ...resource, ciphertext: flipped }, V7_NOTIFY.apiV3Key)).toThrow(
      /does not decrypt/,
    );
    // Only the tag catches this: without final(), the same bytes decrypt to garbage silently.
    const buf = Buffer.from(flipped, 'base64');
    const d = createCipheriv('aes-256-gcm', Buffer.from(V7_NOTIFY.apiV3Key), Buffer.from(resource.nonce));
    expect(() => d.update(buf.subarray(0, -16))).not.toThrow();
  });

  it('refuses the wrong AAD and the wrong key', () => {
    const resource = JSON.parse(V7_NOTIFY.body).resource;
    expect(() => aesGcmOpen({ ...resource, associated_data: 'refund' }, V7_NOTIFY.apiV3Key)).toThrow(
      /does not decrypt/,
    );
    expect(() => aesGcmOpen(resource, 'fedcba9876543210fedcba9876543210')).toThrow(/does not decrypt/);
  });

  it('refuses an APIv3 key that is not 32 bytes, as the 16-byte Go test key is', () => {
    const v2 = JSON.parse(V2_NOTIFY.body).resource;
    expect(() => aesGcmOpen(v2, 'testMchAPIv3Key0')).toThrow(/32 bytes/);
  });
});
