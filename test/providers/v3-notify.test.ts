/**
 * APIv3 notifies: verified on the raw bytes before anything is decrypted, the GCM tag
 * checked, probes and replays refused with a 4xx, and the four event types mapped. Every
 * hostile notify is aimed at a real merchant and a real order, so it fails for the reason
 * its test names.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ParsedNotification, PaymentProvider } from '../../cloudfunctions/shared/providers';
import type { V3Client } from '../../cloudfunctions/shared/providers/v3/client';
import { VerifierKeys } from '../../cloudfunctions/shared/providers/v3/keys';
import { createV3Provider, type V3Merchant } from '../../cloudfunctions/shared/providers/v3/provider';
import { signAnswerForTest, signV3NotifyForTest } from '../../cloudfunctions/shared/providers/v3/testing';
import { GO_SDK_TEST_KEY, V7_NOTIFY } from '../fixtures/wechatpay-v3-vectors';

const testKey = createPrivateKey(GO_SDK_TEST_KEY);
const DIRECT: V3Merchant = { kind: 'direct', appid: 'wxd678efh567hg6787', mchid: '1230000109' };
const PUB_KEY_ID = 'PUB_KEY_ID_0112300001092026010100000000';
let otherKey: KeyObject;

beforeAll(() => {
  otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
});

const unusedClient = {} as V3Client;

function provider(
  opts: {
    nowS?: number;
    merchant?: V3Merchant;
    keys?: { serial: string; key: KeyObject; kind?: 'public-key' | 'platform-certificate' }[];
  } = {},
): PaymentProvider {
  const keys = opts.keys ?? [
    { serial: V7_NOTIFY.serial, key: testKey, kind: 'platform-certificate' as const },
  ];
  return createV3Provider({
    client: unusedClient,
    merchant: opts.merchant ?? DIRECT,
    apiV3Key: V7_NOTIFY.apiV3Key,
    privateKey: testKey,
    verifiers: new VerifierKeys(
      keys.map((k) => ({
        serial: k.serial,
        key: createPublicKey(k.key),
        kind: k.kind ?? 'platform-certificate',
      })),
    ),
    now: () => (opts.nowS ?? V7_NOTIFY.nowS) * 1000,
    nonce: () => 'n',
  });
}

function http(headers: Record<string, string>, body: string | Buffer) {
  return {
    transport: 'http' as const,
    method: 'POST',
    headers,
    body: typeof body === 'string' ? Buffer.from(body) : body,
  };
}

function refusal(p: ParsedNotification): string {
  if (p.verified) throw new Error('expected a refusal, got a verified notify');
  return p.code;
}

const transaction = (over: Record<string, unknown> = {}) => ({
  mchid: DIRECT.kind === 'direct' ? DIRECT.mchid : '',
  appid: DIRECT.kind === 'direct' ? DIRECT.appid : '',
  out_trade_no: 'T20260101120000abc',
  transaction_id: '4200000001202601011234567890',
  trade_type: 'JSAPI',
  trade_state: 'SUCCESS',
  trade_state_desc: '支付成功',
  bank_type: 'OTHERS',
  success_time: '2026-01-01T12:00:05+08:00',
  payer: { openid: 'o_payer' },
  amount: { total: 6800, payer_total: 6800, currency: 'CNY', payer_currency: 'CNY' },
  ...over,
});

const refund = (status: string, over: Record<string, unknown> = {}) => ({
  mchid: '1230000109',
  out_trade_no: 'T20260101120000abc',
  transaction_id: '4200000001202601011234567890',
  out_refund_no: 'R20260101120500xyz',
  refund_id: '50300000012026010112345678',
  refund_status: status,
  ...(status === 'SUCCESS' ? { success_time: '2026-01-01T12:06:00+08:00' } : {}),
  user_received_account: '支付用户零钱',
  amount: { total: 6800, refund: 1800, payer_total: 6800, payer_refund: 1800 },
  ...over,
});

const nowS = V7_NOTIFY.nowS;
const signer = { serial: V7_NOTIFY.serial, privateKey: testKey };

describe('a genuine APIv3 notify', () => {
  it('is verified, decrypted and mapped: the published TRANSACTION.SUCCESS vector', async () => {
    const parsed = await provider().parseNotification(http(V7_NOTIFY.headers, V7_NOTIFY.body));
    expect(parsed).toMatchObject({
      verified: true,
      event: {
        kind: 'payment',
        outTradeNo: '1217752501201407033233368018',
        transactionId: '4200000000000000000000000000',
        totalFen: 100,
        payerOpenid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o',
        paidAtMs: Date.parse('2018-06-08T10:34:56+08:00'),
      },
    });
    if (parsed.verified && parsed.event.kind === 'payment') {
      expect(parsed.event.record).toMatchObject({
        'amount.total': '100',
        event_id: 'EV-2018022511223320873',
      });
      expect(JSON.stringify(parsed.event.record)).not.toMatch(/ciphertext|DUcegK/);
    }
  });

  it('is read with headers in any letter case (CloudBase lower-cases them)', async () => {
    const lower = Object.fromEntries(Object.entries(V7_NOTIFY.headers).map(([k, v]) => [k.toLowerCase(), v]));
    expect((await provider().parseNotification(http(lower, V7_NOTIFY.body))).verified).toBe(true);
  });

  it('maps REFUND.SUCCESS, REFUND.ABNORMAL and REFUND.CLOSED onto the refund states', async () => {
    const p = provider();
    for (const [type, status] of [
      ['REFUND.SUCCESS', 'SUCCESS'],
      ['REFUND.ABNORMAL', 'ABNORMAL'],
      ['REFUND.CLOSED', 'CLOSED'],
    ] as const) {
      const n = signV3NotifyForTest(signer, V7_NOTIFY.apiV3Key, type, refund(status), { timestampS: nowS });
      expect(await p.parseNotification(http(n.headers, n.body))).toMatchObject({
        verified: true,
        event: {
          kind: 'refund',
          status,
          outRefundNo: 'R20260101120500xyz',
          outTradeNo: 'T20260101120000abc',
          refundFen: 1800,
          totalFen: 6800,
        },
      });
    }
  });

  it('acknowledges an event type the shop does not use without acting on it', async () => {
    const n = signV3NotifyForTest(
      signer,
      V7_NOTIFY.apiV3Key,
      'PAYSCORE.USER_OPEN_SERVICE',
      { mchid: '1230000109' },
      { timestampS: nowS },
    );
    expect(await provider().parseNotification(http(n.headers, n.body))).toEqual({
      verified: true,
      event: { kind: 'ignored', reason: 'event_type PAYSCORE.USER_OPEN_SERVICE' },
    });
  });

  it('is accepted under either key during a switch-over, each only under its own serial', async () => {
    const keys = [
      { serial: PUB_KEY_ID, key: otherKey, kind: 'public-key' as const },
      { serial: V7_NOTIFY.serial, key: testKey },
    ];
    const body = () =>
      signV3NotifyForTest(signer, V7_NOTIFY.apiV3Key, 'TRANSACTION.SUCCESS', transaction(), {
        timestampS: nowS,
      });
    const byCert = body();
    expect((await provider({ keys }).parseNotification(http(byCert.headers, byCert.body))).verified).toBe(
      true,
    );
    const byPub = signV3NotifyForTest(
      { serial: PUB_KEY_ID, privateKey: otherKey },
      V7_NOTIFY.apiV3Key,
      'TRANSACTION.SUCCESS',
      transaction(),
      {
        timestampS: nowS,
      },
    );
    expect((await provider({ keys }).parseNotification(http(byPub.headers, byPub.body))).verified).toBe(true);
    // The public key's signature presented under the certificate's serial is refused.
    const swapped = { ...byPub.headers, 'Wechatpay-Serial': V7_NOTIFY.serial };
    expect(refusal(await provider({ keys }).parseNotification(http(swapped, byPub.body)))).toBe(
      'BAD_SIGNATURE',
    );
  });

  it("checks a service provider's sp_mchid and sub_mchid", async () => {
    const merchant: V3Merchant = {
      kind: 'partner',
      spAppid: 'wx8888888888888888',
      spMchid: '1900000100',
      subMchid: '1900000109',
      subAppid: 'wxd678efh567hg6787',
    };
    const partnerTx = (sub: string) =>
      transaction({
        mchid: undefined,
        appid: undefined,
        sp_mchid: '1900000100',
        sp_appid: 'wx8888888888888888',
        sub_mchid: sub,
        sub_appid: 'wxd678efh567hg6787',
        payer: { sub_openid: 'o_sub' },
      });
    const mine = signV3NotifyForTest(
      signer,
      V7_NOTIFY.apiV3Key,
      'TRANSACTION.SUCCESS',
      partnerTx('1900000109'),
      { timestampS: nowS },
    );
    expect(await provider({ merchant }).parseNotification(http(mine.headers, mine.body))).toMatchObject({
      verified: true,
      event: { kind: 'payment', payerOpenid: 'o_sub' },
    });
    const theirs = signV3NotifyForTest(
      signer,
      V7_NOTIFY.apiV3Key,
      'TRANSACTION.SUCCESS',
      partnerTx('1900000999'),
      { timestampS: nowS },
    );
    expect(refusal(await provider({ merchant }).parseNotification(http(theirs.headers, theirs.body)))).toBe(
      'MERCHANT_MISMATCH',
    );
  });
});

describe('a hostile APIv3 notify is refused', () => {
  it('when replayed: the same verified notify a second time', async () => {
    const p = provider();
    expect((await p.parseNotification(http(V7_NOTIFY.headers, V7_NOTIFY.body))).verified).toBe(true);
    expect(refusal(await p.parseNotification(http(V7_NOTIFY.headers, V7_NOTIFY.body)))).toBe('REPLAYED');
  });

  it('when its timestamp is 5 minutes or more from now, either way', async () => {
    expect(
      (await provider({ nowS: nowS + 299 }).parseNotification(http(V7_NOTIFY.headers, V7_NOTIFY.body)))
        .verified,
    ).toBe(true);
    expect(
      refusal(
        await provider({ nowS: nowS + 300 }).parseNotification(http(V7_NOTIFY.headers, V7_NOTIFY.body)),
      ),
    ).toBe('STALE');
    expect(
      refusal(
        await provider({ nowS: nowS - 300 }).parseNotification(http(V7_NOTIFY.headers, V7_NOTIFY.body)),
      ),
    ).toBe('STALE');
  });

  it('when its serial is not one of ours', async () => {
    const h = { ...V7_NOTIFY.headers, 'Wechatpay-Serial': '5157F09EFDC096DE15EBE81A47057A7232F1B8E1' };
    expect(refusal(await provider().parseNotification(http(h, V7_NOTIFY.body)))).toBe('UNKNOWN_SERIAL');
  });

  it('when it is a WECHATPAY/SIGNTEST/ probe, with a 4xx reply', async () => {
    const p = provider();
    const h = {
      ...V7_NOTIFY.headers,
      'Wechatpay-Signature': `WECHATPAY/SIGNTEST/${V7_NOTIFY.headers['Wechatpay-Signature']}`,
    };
    const parsed = await p.parseNotification(http(h, V7_NOTIFY.body));
    expect(refusal(parsed)).toBe('SIGNTEST');
    const reply = p.reply({ ok: false, retry: false, message: 'signature' });
    expect(reply).toMatchObject({ transport: 'http', statusCode: 400 });
    if (reply.transport === 'http')
      expect(JSON.parse(reply.body)).toEqual({ code: 'FAIL', message: 'signature' });
  });

  it('when its body was re-serialised (whitespace), though every byte of meaning is the same', async () => {
    const reformatted = JSON.stringify(JSON.parse(V7_NOTIFY.body), null, 1);
    expect(refusal(await provider().parseNotification(http(V7_NOTIFY.headers, reformatted)))).toBe(
      'BAD_SIGNATURE',
    );
  });

  it("when forged: signed by a key that is not WeChat's, under WeChat's serial", async () => {
    const n = signV3NotifyForTest(
      { serial: V7_NOTIFY.serial, privateKey: otherKey },
      V7_NOTIFY.apiV3Key,
      'TRANSACTION.SUCCESS',
      transaction(),
      {
        timestampS: nowS,
      },
    );
    expect(refusal(await provider().parseNotification(http(n.headers, n.body)))).toBe('BAD_SIGNATURE');
  });

  it('when its resource fails the GCM tag, even with a valid signature over the altered body', async () => {
    const envelope = JSON.parse(V7_NOTIFY.body);
    const c: string = envelope.resource.ciphertext;
    envelope.resource.ciphertext = `${c.slice(0, -6)}${c.slice(-6, -5) === 'A' ? 'B' : 'A'}${c.slice(-5)}`;
    const body = JSON.stringify(envelope);
    const headers = signAnswerForTest(signer, body, { timestampS: nowS });
    expect(refusal(await provider().parseNotification(http(headers, body)))).toBe('RESOURCE_DECRYPT');
  });

  it('before decryption: a bad signature is reported even when the resource would not decrypt either', async () => {
    const envelope = JSON.parse(V7_NOTIFY.body);
    envelope.resource.ciphertext = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const body = JSON.stringify(envelope);
    expect(refusal(await provider().parseNotification(http(V7_NOTIFY.headers, body)))).toBe('BAD_SIGNATURE');
  });

  it('when it is genuine but for another merchant', async () => {
    const n = signV3NotifyForTest(
      signer,
      V7_NOTIFY.apiV3Key,
      'TRANSACTION.SUCCESS',
      transaction({ mchid: '1230000999' }),
      { timestampS: nowS },
    );
    expect(refusal(await provider().parseNotification(http(n.headers, n.body)))).toBe('MERCHANT_MISMATCH');
  });

  it("when a refund's refund_status contradicts its event type", async () => {
    const n = signV3NotifyForTest(signer, V7_NOTIFY.apiV3Key, 'REFUND.SUCCESS', refund('CLOSED'), {
      timestampS: nowS,
    });
    expect(refusal(await provider().parseNotification(http(n.headers, n.body)))).toBe('MALFORMED');
  });

  it('when it lacks the Wechatpay headers or is not a POST', async () => {
    expect(refusal(await provider().parseNotification(http({}, V7_NOTIFY.body)))).toBe('MISSING_HEADERS');
    expect(
      refusal(
        await provider().parseNotification({ ...http(V7_NOTIFY.headers, V7_NOTIFY.body), method: 'GET' }),
      ),
    ).toBe('METHOD');
  });
});

describe('the acknowledgement WeChat expects', () => {
  it('is 204 without a body on success, 500 with {"code":"FAIL"} when it should come again', () => {
    const p = provider();
    expect(p.reply({ ok: true })).toEqual({ transport: 'http', statusCode: 204, headers: {}, body: '' });
    const retry = p.reply({ ok: false, retry: true, message: 'database busy' });
    expect(retry).toMatchObject({
      statusCode: 500,
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
  });
});
