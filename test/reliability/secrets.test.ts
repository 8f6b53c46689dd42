/**
 * docs/ARCHITECTURE.md §3: the API key and the client certificate's private key never appear in logs,
 * errors or responses. A stack with a recognisable key runs a full flow and its failure
 * paths while every line any part of it prints is captured; then everything is scanned for
 * the key, md5(key) (the req_info AES key) and the private key's body.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../../sandbox/stack';
import {
  ADMIN,
  buyAndPay,
  newRequestId,
  OTHER,
  payNotifyFor,
  postHttp,
  SHOPPER,
  testStack,
} from '../integration/support';
import { runReconcile, summary } from './support';

const API_KEY = 'SECRETKEYSECRETKEYSECRETKEY12345';

const captured: string[] = [];
const restore: (() => void)[] = [];
let stack: Stack;
let dataDir: string;

/** Whatever else this process prints (simulator, emulator, gateway): wrap the writers. */
function capture(): void {
  for (const stream of [process.stdout, process.stderr]) {
    const original = stream.write.bind(stream);
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      captured.push(Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk));
      return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof stream.write;
    restore.push(() => {
      stream.write = original as typeof stream.write;
    });
  }
  for (const level of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    const original = console[level];
    console[level] = (...args: unknown[]) => {
      captured.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
      original(...args);
    };
    restore.push(() => {
      console[level] = original;
    });
  }
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'reliability-secrets-'));
  // startStack reads the merchant (and so the simulator's key) from merchant.json.
  writeFileSync(
    join(dataDir, 'merchant.json'),
    JSON.stringify({
      appid: 'wxlocalsandbox0001',
      mchid: '1900000109',
      apiKey: API_KEY,
      signType: 'HMAC-SHA256',
    }),
  );
  capture();
  stack = await testStack({
    dataDir,
    env: { WXPAY_TIMEOUT_MS: '600' },
    // Every line the functions print (their JSON logs, stderr) and the runtime's own lines.
    functionLog: (line) => captured.push(line),
  });
});
afterAll(async () => {
  await stack?.close();
  for (const r of restore.splice(0)) r();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('secrets', () => {
  it('never shows the API key, its md5 or the private key in any log line, error or response', async () => {
    expect(stack.env['WXPAY_API_KEY']).toBe(API_KEY);
    const keyPem = readFileSync(stack.info.merchant.keyPath, 'utf8');
    const pemLines = keyPem.split('\n').filter((l) => l.length === 64);
    const md5 = createHash('md5').update(API_KEY).digest('hex');
    const needles: Record<string, string> = {
      'api key': API_KEY,
      'md5(api key)': md5,
      'MD5(API KEY)': md5.toUpperCase(),
      'private key, first line': pemLines[0]!,
      'private key, middle line': pemLines[Math.floor(pemLines.length / 2)]!,
      'private key, a line base64 of the whole': Buffer.from(keyPem).toString('base64').slice(64, 128),
    };
    const seen: string[] = [];
    const keep = (what: unknown) => seen.push(typeof what === 'string' ? what : JSON.stringify(what));

    // The full flow: order, pay (notify), refund (approve, WeChat, notify), reconcile.
    const orderId = await buyAndPay(stack, SHOPPER);
    const applied = await stack.call(
      'applyRefund',
      { orderId, refundFee: 100, reason: '退款', requestId: newRequestId() },
      SHOPPER,
    );
    keep(applied);
    const refundId = applied.ok ? applied.data.refund.refundId : '';
    keep(await stack.call('approveRefund', { refundId, decision: 'approve' }, ADMIN));
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    keep(await stack.call('queryOrder', { orderId }, SHOPPER));
    keep(await stack.call('listRefunds', {}, ADMIN));
    keep(await runReconcile(stack));

    // Failure paths: forged and broken notifies, WeChat errors and timeouts, refusals.
    keep(
      await postHttp(
        stack,
        '/pay/notify',
        payNotifyFor(stack, { out_trade_no: orderId, total_fee: 6800 }, 'A'.repeat(32)),
      ),
    );
    keep(await postHttp(stack, '/pay/notify', '<xml><a>'));
    keep(
      await postHttp(
        stack,
        '/refund/notify',
        '<xml><return_code>SUCCESS</return_code><req_info>AAAA</req_info></xml>',
      ),
    );
    stack.simulator.setFaults({ systemErrorRate: 1 });
    keep(await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER));
    stack.simulator.setFaults({ systemErrorRate: 0, timeoutRate: 1 });
    keep(await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER));
    stack.simulator.setFaults({ timeoutRate: 0, refundError: 'NOTENOUGH' });
    const second = await stack.call(
      'applyRefund',
      { orderId, refundFee: 1, reason: 'x', requestId: newRequestId() },
      SHOPPER,
    );
    keep(second);
    if (second.ok)
      keep(
        await stack.call(
          'approveRefund',
          { refundId: second.data.refund.refundId, decision: 'approve' },
          ADMIN,
        ),
      );
    stack.simulator.setFaults({ refundError: null });
    keep(await stack.call('approveRefund', { refundId, decision: 'approve' }, OTHER));
    keep(
      await stack.call(
        'applyRefund',
        { orderId, refundFee: 999_999, reason: 'x', requestId: newRequestId() },
        SHOPPER,
      ),
    );
    keep(
      await stack.runtime.invoke(
        'payNotify',
        { body: '<xml/>' },
        { OPENID: SHOPPER, APPID: stack.info.merchant.appid, SOURCE: 'wx_client' },
      ),
    );
    keep(
      await stack.runtime.invoke(
        'reconcile',
        {},
        { OPENID: SHOPPER, APPID: stack.info.merchant.appid, SOURCE: 'wx_client' },
      ),
    );
    // A configuration error names the variable, never its value.
    const { createFunctionRuntime } = await import('../../sandbox/runtime');
    const broken = createFunctionRuntime({
      functionsDir: join(__dirname, '..', '..', 'dist', 'cloudfunctions'),
      serviceUrl: stack.emulator.serviceUrl,
      env: {
        ...stack.env,
        WXPAY_API_KEY: `${API_KEY}!`,
        WXPAY_KEY_PEM: keyPem.replace('KEY-----\n', 'KEY-----\nXX'),
      },
      log: (line) => captured.push(line),
      functionLog: (_fn, line) => captured.push(line),
    });
    try {
      keep(
        await broken.invoke(
          'createOrder',
          { items: [{ productId: 'sticker', quantity: 1 }] },
          { OPENID: SHOPPER, APPID: stack.info.merchant.appid, SOURCE: 'wx_client' },
        ),
      );
      keep(
        await broken.invoke(
          'approveRefund',
          { refundId, decision: 'approve' },
          { OPENID: ADMIN, APPID: stack.info.merchant.appid, SOURCE: 'wx_client' },
        ),
      );
    } finally {
      await broken.close();
    }
    for (const n of stack.simulator.notifies()) keep({ reply: n.replyBody, error: n.error });
    keep(await stack.db.all('payment_events'));
    keep(await stack.db.all('refunds'));
    keep(await stack.db.all('orders'));
    // Worker output arrives asynchronously; give the pipes a moment.
    await new Promise((r) => setTimeout(r, 300));

    const haystacks = [...captured, ...seen];
    const hits = Object.entries(needles).flatMap(([name, needle]) =>
      haystacks.filter((h) => h.includes(needle)).map((h) => `${name} in: ${h.slice(0, 160)}`),
    );
    // The scan can fail: where the secrets are known to be, it finds every one.
    const control = [
      JSON.stringify(stack.env),
      Buffer.from(keyPem).toString('base64'),
      md5,
      md5.toUpperCase(),
    ];
    for (const needle of Object.values(needles)) expect(control.some((h) => h.includes(needle))).toBe(true);
    const logLines = captured
      .join('\n')
      .split('\n')
      .filter((l) => l.trim() !== '').length;
    const functionLines = captured.filter((c) => c.includes('"level"')).length;
    summary('secrets', {
      'function log lines': functionLines,
      'log lines': logLines,
      'responses and documents': seen.length,
      needles: Object.keys(needles).length,
      occurrences: hits.length,
    });
    expect(logLines).toBeGreaterThan(20);
    // The functions' own JSON log lines (instance stdout) are among them.
    expect(functionLines).toBeGreaterThan(10);
    expect(hits).toEqual([]);
  }, 120_000);
});
