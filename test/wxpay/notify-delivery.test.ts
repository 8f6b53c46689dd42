import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseXml, paySign, toXml } from '../../cloudfunctions/shared/wxpay';
import { NOTIFY_RETRY_SCHEDULE_S, startWxPaySimulator } from '../../sandbox/wxpay';
import { type Env, MD5_MERCHANT, type Receiver, startEnv, startReceiver, uniqueNo, until } from './fixtures';

const SUCCESS = toXml({ return_code: 'SUCCESS', return_msg: 'OK' });
const FAIL = toXml({ return_code: 'FAIL', return_msg: 'busy' });

let env: Env;
const receivers: Receiver[] = [];
beforeAll(async () => {
  // timeScale 0.001: the 15 s / 15 s / 30 s ... schedule becomes 15 ms / 15 ms / 30 ms ...
  env = await startEnv({ timeScale: 0.001 });
});
afterEach(() => {
  env.sim.setFaults({
    dropPayNotifies: false,
    duplicateNotifies: 0,
    reorderNotifies: false,
    notifyDelayMs: 0,
  });
});
afterAll(async () => {
  await env?.close();
  for (const r of receivers) await r.close();
});

async function receiver(reply: Receiver['reply']): Promise<Receiver> {
  const r = await startReceiver(reply);
  receivers.push(r);
  return r;
}

async function payOrder(notifyUrl: string): Promise<string> {
  const no = uniqueNo('N');
  const res = await env.client(MD5_MERCHANT).unifiedOrder({
    body: 'x',
    out_trade_no: no,
    total_fee: 1,
    spbill_create_ip: '127.0.0.1',
    notify_url: notifyUrl,
    openid: 'o1',
  });
  const pkg = `prepay_id=${res['prepay_id']}`;
  const p = paySign(
    { appId: MD5_MERCHANT.appid, timeStamp: '1', nonceStr: 'n', package: pkg, signType: 'MD5' },
    MD5_MERCHANT.apiKey,
  );
  expect(env.sim.pay({ ...p }).errMsg).toBe('requestPayment:ok');
  return no;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('pay notify delivery', () => {
  it('retries on the official schedule until a SUCCESS reply, then stops: exactly 3 attempts', async () => {
    const r = await receiver((_b, n) => ({ body: n < 3 ? FAIL : SUCCESS }));
    const no = await payOrder(r.url);
    await until(() => r.bodies.length >= 3, 'three attempts');
    await sleep(150); // the 4th attempt would be due after 30 ms
    expect(r.bodies).toHaveLength(3);
    expect(new Set(r.bodies).size).toBe(1);
    const sent = env.sim.notifies().filter((n) => n.body.includes(no));
    expect(sent.map((n) => [n.attempt, n.acknowledged])).toEqual([
      [1, false],
      [2, false],
      [3, true],
    ]);
    expect(NOTIFY_RETRY_SCHEDULE_S.reduce((a, b) => a + b, 0)).toBe(24 * 3600 + 4 * 60);
  });

  it('does not take an HTTP 200 "success" text as an acknowledgement', async () => {
    const r = await receiver((_b, n) => ({ body: n < 2 ? 'success' : SUCCESS }));
    await payOrder(r.url);
    await until(() => r.bodies.length >= 2, 'a retry');
    await sleep(60);
    expect(r.bodies).toHaveLength(2);
  });

  it('drops pay notifies under the fault, while the order is still paid', async () => {
    const r = await receiver(() => ({ body: SUCCESS }));
    env.sim.setFaults({ dropPayNotifies: true });
    const no = await payOrder(r.url);
    await sleep(50);
    expect(r.bodies).toHaveLength(0);
    expect(env.sim.notifies().find((n) => n.body.includes(no))).toMatchObject({ dropped: true });
    expect((await env.client(MD5_MERCHANT).orderQuery({ out_trade_no: no }))['trade_state']).toBe('SUCCESS');
  });

  it('sends duplicates in parallel under the fault', async () => {
    const r = await receiver(() => ({ body: SUCCESS }));
    env.sim.setFaults({ duplicateNotifies: 2 });
    await payOrder(r.url);
    await until(() => r.bodies.length >= 3, 'three copies');
    await sleep(30);
    expect(r.bodies).toHaveLength(3);
    expect(new Set(r.bodies).size).toBe(1);
  });

  it('holds notifies under reorderNotifies and delivers them newest first on flush', async () => {
    const r = await receiver(() => ({ body: SUCCESS }));
    env.sim.setFaults({ reorderNotifies: true });
    const first = await payOrder(r.url);
    const second = await payOrder(r.url);
    await sleep(30);
    expect(r.bodies).toHaveLength(0);
    await env.sim.flushNotifies();
    expect(r.bodies.map((b) => parseXml(b)['out_trade_no'])).toEqual([second, first]);
  });

  it('flushNotifies sends a retry that is not due yet', async () => {
    env.sim.setFaults({ notifyDelayMs: 60_000 });
    const r = await receiver(() => ({ body: SUCCESS }));
    await payOrder(r.url);
    await sleep(30);
    expect(r.bodies).toHaveLength(0);
    await env.sim.flushNotifies();
    expect(r.bodies).toHaveLength(1);
  });
});

describe('the notify log', () => {
  it("keeps every attempt with the shop's reply across a restart, and goes on after it", async () => {
    const stateFile = join(env.dir, 'restart', 'wxpay.json');
    const opts = { certs: env.certs, merchants: [MD5_MERCHANT], timeScale: 0.001, stateFile };
    const r = await receiver((_b, n) => ({ body: n < 2 ? FAIL : SUCCESS }));
    const pay = async (sim: Awaited<ReturnType<typeof startWxPaySimulator>>) => {
      const no = uniqueNo('L');
      const res = await env.client(MD5_MERCHANT, { baseUrl: sim.url }).unifiedOrder({
        body: 'x',
        out_trade_no: no,
        total_fee: 1,
        spbill_create_ip: '127.0.0.1',
        notify_url: r.url,
        openid: 'o1',
      });
      const pkg = `prepay_id=${res['prepay_id']}`;
      const p = paySign(
        { appId: MD5_MERCHANT.appid, timeStamp: '1', nonceStr: 'n', package: pkg, signType: 'MD5' },
        MD5_MERCHANT.apiKey,
      );
      expect(sim.pay({ ...p }).errMsg).toBe('requestPayment:ok');
      return no;
    };
    const first = await startWxPaySimulator(opts);
    const no = await pay(first);
    await until(() => first.notifies().some((n) => n.acknowledged), 'an acknowledged notify');
    const before = first.notifies().map((n) => [n.attempt, n.acknowledged, n.replyStatus]);
    expect(before).toEqual([
      [1, false, 200],
      [2, true, 200],
    ]);
    await first.close();

    const second = await startWxPaySimulator(opts);
    try {
      expect(second.notifies().map((n) => [n.attempt, n.acknowledged, n.replyStatus])).toEqual(before);
      expect(second.notifies().every((n) => n.body.includes(no))).toBe(true);
      await pay(second);
      await until(() => second.notifies().length === 3, 'the next notify logged after the kept ones');
    } finally {
      await second.close();
    }
  });
});
