/**
 * APIv3 crypto against wechatpay-axios-plugin@0.9.6, on the same inputs: signing a JSAPI
 * request's Authorization, verifying a signed answer, opening an AES-256-GCM notify resource,
 * and a whole notify (verify on the raw bytes, then decrypt and parse). The library's side
 * is what its own code does (`Rsa.sign(Formatter.request(...))`, its response verifier's
 * steps, `Aes.AesGcm.decrypt`) or its documented webhook recipe. Before anything is timed,
 * both must produce the same signature, accept the genuine message and refuse a tampered
 * one: a faster wrong answer would make the comparison meaningless.
 *
 * Prints its own section and writes .data/bench-v3.json, so bench/index.ts needs one line.
 */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Aes, Formatter, Rsa } from 'wechatpay-axios-plugin';
import { checkSignature } from '../cloudfunctions/shared/providers/v3/client';
import { aesGcmOpen, requestMessage, signSha256Rsa } from '../cloudfunctions/shared/providers/v3/crypto';
import { VerifierKeys } from '../cloudfunctions/shared/providers/v3/keys';
import { createV3Provider } from '../cloudfunctions/shared/providers/v3/provider';
import { ReplayGuard } from '../cloudfunctions/shared/providers/v3/replay';
import { signAnswerForTest, signV3NotifyForTest } from '../cloudfunctions/shared/providers/v3/testing';
import { median, msSince, round, table } from './stats';

export interface V3BenchOptions {
  rounds: number;
  roundMs: number;
  warmupMs: number;
}

export interface V3BenchRow {
  op: string;
  impl: string;
  opsPerSec: number;
  oursRatio: number;
}

const API_V3_KEY = '0123456789abcdef0123456789abcdef';
const SERIAL = 'PUB_KEY_ID_0119000001092026010100000000';
const MERCHANT = { kind: 'direct' as const, appid: 'wxd678efh567hg6787', mchid: '1900000109' };

/** Remembers nothing: the bench replays one notify on purpose. */
class NoReplayGuard extends ReplayGuard {
  override remember(): boolean {
    return true;
  }
}

let sink = 0;
async function opsPerSecond(op: () => string | Promise<string>, ms: number): Promise<number> {
  const batch = 32;
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < ms) {
    for (let i = 0; i < batch; i++) {
      const r = op();
      sink += (typeof r === 'string' ? r : await r).length;
    }
    n += batch;
    elapsed = msSince(start);
  }
  return (n / elapsed) * 1000;
}

export async function runV3Bench(opts: V3BenchOptions, root = join(__dirname, '..')): Promise<V3BenchRow[]> {
  console.log('\n== 2b. APIv3 crypto: operations per second (median of rounds; ratio = ours ÷ them) ==');
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicKey = createPublicKey(privateKey);
  const keys = new VerifierKeys([{ serial: SERIAL, kind: 'public-key', key: publicKey }]);
  const certs: Record<string, unknown> = { [SERIAL]: publicKey };
  const nowS = Math.floor(Date.now() / 1000);

  // A JSAPI request body as createPayment sends it.
  const body = JSON.stringify({
    appid: MERCHANT.appid,
    mchid: MERCHANT.mchid,
    description: '小店-西湖龙井 明前 100g 等2件',
    out_trade_no: '20260101120000123abcDEF456',
    time_expire: '2026-01-01T12:30:00+08:00',
    notify_url: 'https://shop-1a2b3c.service.tcloudbase.com/pay/notify',
    amount: { total: 6800, currency: 'CNY' },
    payer: { openid: 'oUpF8uMEb4qRXf22hE3X68TekukE' },
    scene_info: { payer_client_ip: '203.0.113.7' },
  });
  const url = '/v3/pay/transactions/jsapi';
  const nonce = '593BEC0C930BF1AFEB40B4A08C8FB242';
  const answer = JSON.stringify({ prepay_id: 'wx26112221580621e9b071c00d9e093b0000' });
  const answerHeaders = signAnswerForTest({ serial: SERIAL, privateKey }, answer, {
    timestampS: nowS,
    nonce,
  });
  const notify = signV3NotifyForTest(
    { serial: SERIAL, privateKey },
    API_V3_KEY,
    'TRANSACTION.SUCCESS',
    {
      mchid: MERCHANT.mchid,
      appid: MERCHANT.appid,
      out_trade_no: '20260101120000123abcDEF456',
      transaction_id: '4200000001202601011234567890',
      trade_type: 'JSAPI',
      trade_state: 'SUCCESS',
      trade_state_desc: '支付成功',
      bank_type: 'OTHERS',
      attach: '',
      success_time: '2026-01-01T12:00:05+08:00',
      payer: { openid: 'oUpF8uMEb4qRXf22hE3X68TekukE' },
      amount: { total: 6800, payer_total: 6800, currency: 'CNY', payer_currency: 'CNY' },
    },
    { timestampS: nowS },
  );
  const notifyBytes = Buffer.from(notify.body);
  const resource = JSON.parse(notify.body).resource as {
    ciphertext: string;
    nonce: string;
    associated_data: string;
  };
  const provider = createV3Provider({
    client: {} as never,
    merchant: MERCHANT,
    apiV3Key: API_V3_KEY,
    privateKey,
    verifiers: keys,
    now: Date.now,
    nonce: () => nonce,
    notifyReplayGuard: new NoReplayGuard(),
  });
  const h = (headers: Record<string, string>, name: string) => headers[name] ?? '';

  // The library's response verifier (lib/decorator.js) step by step, and its webhook recipe.
  const theirsVerify = (headers: Record<string, string>, text: string): boolean => {
    const ts = Number(h(headers, 'Wechatpay-Timestamp'));
    if (Math.abs(Formatter.timestamp() - ts) > 300) return false;
    const serial = h(headers, 'Wechatpay-Serial');
    if (!Object.hasOwn(certs, serial)) return false;
    return Rsa.verify(
      Formatter.response(String(ts), h(headers, 'Wechatpay-Nonce'), text),
      h(headers, 'Wechatpay-Signature'),
      certs[serial] as never,
    );
  };
  const theirsNotify = (headers: Record<string, string>, text: string): string => {
    if (!theirsVerify(headers, text)) throw new Error('signature');
    const r = JSON.parse(text).resource;
    const plain = JSON.parse(Aes.AesGcm.decrypt(r.ciphertext, API_V3_KEY, r.nonce, r.associated_data));
    return plain.out_trade_no as string;
  };

  const impls = {
    'sign request (JSAPI)': {
      ours: () => signSha256Rsa(requestMessage('POST', url, String(nowS), nonce, body), privateKey),
      theirs: () => Rsa.sign(Formatter.request('POST', url, String(nowS), nonce, body), privateKey as never),
    },
    'verify answer': {
      ours: () =>
        checkSignature(answerHeaders, Buffer.from(answer), keys, Date.now(), undefined).ok ? 'y' : 'n',
      theirs: () => (theirsVerify(answerHeaders, answer) ? 'y' : 'n'),
    },
    'decrypt resource': {
      ours: () => aesGcmOpen(resource, API_V3_KEY).toString('utf8'),
      theirs: () =>
        Aes.AesGcm.decrypt(resource.ciphertext, API_V3_KEY, resource.nonce, resource.associated_data),
    },
    'verify+decrypt notify': {
      ours: async () => {
        const p = await provider.parseNotification({
          transport: 'http',
          method: 'POST',
          headers: notify.headers,
          body: notifyBytes,
        });
        if (!p.verified || p.event.kind !== 'payment') throw new Error('refused');
        return p.event.outTradeNo;
      },
      theirs: () => theirsNotify(notify.headers, notify.body),
    },
  } as const;

  // Agreement first.
  assert.equal(
    impls['sign request (JSAPI)'].ours(),
    impls['sign request (JSAPI)'].theirs(),
    'same Authorization signature',
  );
  assert.equal(impls['verify answer'].ours(), 'y');
  assert.equal(impls['verify answer'].theirs(), 'y');
  const tampered = answer.replace('wx26', 'wx27');
  assert.equal(checkSignature(answerHeaders, Buffer.from(tampered), keys, Date.now(), undefined).ok, false);
  assert.equal(theirsVerify(answerHeaders, tampered), false);
  assert.equal(impls['decrypt resource'].ours(), impls['decrypt resource'].theirs(), 'same plaintext');
  const flipped = {
    ...resource,
    ciphertext: `${resource.ciphertext.slice(0, 5)}${resource.ciphertext[5] === 'A' ? 'B' : 'A'}${resource.ciphertext.slice(6)}`,
  };
  assert.throws(() => aesGcmOpen(flipped, API_V3_KEY), 'ours checks the GCM tag');
  assert.throws(
    () => Aes.AesGcm.decrypt(flipped.ciphertext, API_V3_KEY, flipped.nonce, flipped.associated_data),
    'theirs checks the GCM tag',
  );
  assert.equal(await impls['verify+decrypt notify'].ours(), impls['verify+decrypt notify'].theirs());
  console.log(
    '  agreed: same Authorization signature; both accept the genuine answer and notify, refuse a changed body and a changed GCM tag',
  );

  const rows: V3BenchRow[] = [];
  for (const [op, pair] of Object.entries(impls)) {
    const runs: [string, () => string | Promise<string>][] = [
      ['ours', pair.ours],
      ['wechatpay-axios-plugin@0.9.6', pair.theirs],
    ];
    for (const [, fn] of runs) await opsPerSecond(fn, opts.warmupMs);
    const samples = new Map<string, number[]>(runs.map(([n]) => [n, []]));
    for (let r = 0; r < opts.rounds; r++) {
      for (let k = 0; k < runs.length; k++) {
        const [name, fn] = runs[(r + k) % runs.length]!;
        samples.get(name)!.push(await opsPerSecond(fn, opts.roundMs));
      }
    }
    const oursOps = median(samples.get('ours')!);
    for (const [name] of runs) {
      const m = median(samples.get(name)!);
      rows.push({ op, impl: name, opsPerSec: Math.round(m), oursRatio: round(oursOps / m, 2) });
    }
  }
  if (sink === 0) throw new Error('nothing ran');
  console.log(
    table([
      ['operation', 'implementation', 'ops/s', 'ours ÷ it'],
      ...rows.map((r) => [r.op, r.impl, r.opsPerSec, `${r.oursRatio}×`]),
    ]),
  );
  mkdirSync(join(root, '.data'), { recursive: true });
  writeFileSync(
    join(root, '.data', 'bench-v3.json'),
    `${JSON.stringify({ at: new Date().toISOString(), options: opts, rows }, null, 2)}\n`,
  );
  return rows;
}
