/**
 * `startStack({provider})`: the default stays the APIv2 sandbox; `v3` gives the functions
 * and stack.json the merchant's v3 material and a simulator that speaks APIv3 with it;
 * `cloudpay` lets functions call cloud.cloudPay through the emulator, and the simulator calls
 * the named function back through the function runtime, marked wx_paycallback.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../cloudfunctions/shared/config';
import { v3ProviderFromConfig } from '../../cloudfunctions/shared/providers';
import { startStack } from '../../sandbox/stack';
import { configuredRuntime, enginesRange } from '../../scripts/target';
import { uniqueNo, until } from './fixtures';

const quiet = { timeScale: 0.001, functionLog: () => {} };
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('startStack with a provider', () => {
  it('writes provider v2 and no v3 material by default, with WXPAY_PROVIDER unset', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'stack-v2-'));
    dirs.push(dataDir);
    const stack = await startStack({ ...quiet, dataDir, functionsDir: fixtureFunctions() });
    try {
      const info = JSON.parse(readFileSync(join(dataDir, 'stack.json'), 'utf8'));
      expect(info.provider).toBe('v2');
      expect(info.v3).toBeUndefined();
      expect(stack.env['WXPAY_PROVIDER']).toBeUndefined();
      expect(stack.simulator.v3).toBeUndefined();
    } finally {
      await stack.close();
    }
  });

  it("v3: stack.json names the material, the functions' variables validate, and a provider built from them talks to the simulator", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'stack-v3-'));
    dirs.push(dataDir);
    const stack = await startStack({ ...quiet, dataDir, provider: 'v3', functionsDir: fixtureFunctions() });
    try {
      const info = JSON.parse(readFileSync(join(dataDir, 'stack.json'), 'utf8'));
      expect(info.provider).toBe('v3');
      expect(info.v3).toMatchObject({
        publicKeyId: expect.stringMatching(/^PUB_KEY_ID_\d+$/),
        merchantSerial: expect.stringMatching(/^[0-9A-F]+$/),
        privateKeyPath: info.merchant.keyPath,
      });
      expect(readFileSync(info.v3.publicKeyPath, 'utf8')).toContain('BEGIN PUBLIC KEY');
      const config = loadConfig(stack.env, { wxpay: true }).providers;
      expect(config.current).toBe('v3');
      if (!config.v3) throw new Error('v3 is not configured');
      const provider = v3ProviderFromConfig(config.v3);
      const outTradeNo = uniqueNo('SV3');
      const { payment } = await provider.createPayment({
        outTradeNo,
        description: 'stack',
        totalFen: 1,
        payerOpenid: 'o_stack',
        clientIp: '127.0.0.1',
        expiresAtMs: Date.now() + 600_000,
      });
      expect(stack.simulator.pay(payment as never)).toEqual({ errMsg: 'requestPayment:ok' });
      expect((await provider.queryPayment(outTradeNo)).state).toBe('SUCCESS');
      // The pay notify went, signed and encrypted, to the shop's notify URL.
      await until(
        () =>
          stack.simulator
            .notifies()
            .find((n) => n.transport === 'v3' && n.url === `${info.gatewayUrl}/http/pay/notify`),
        'the v3 pay notify to the gateway',
      );
      // The material is kept: a restart reads the same keys.
      const again = await startStack({
        ...quiet,
        dataDir,
        provider: 'v3',
        functionsDir: fixtureFunctions(),
        ports: {},
      });
      try {
        expect(again.info.v3).toEqual(stack.info.v3);
      } finally {
        await again.close();
      }
    } finally {
      await stack.close();
    }
  });

  it('cloudpay: a function calls cloud.cloudPay, the shopper pays, and the named function is called back as wx_paycallback', async () => {
    const stack = await startStack({ ...quiet, provider: 'cloudpay', functionsDir: fixtureFunctions() });
    try {
      expect(stack.info.cloudPay).toEqual({
        subMchId: stack.info.merchant.mchid,
        envId: 'local',
        payFunction: 'payNotify',
        refundFunction: 'refundNotify',
      });
      const outTradeNo = uniqueNo('SCP');
      const ordered = (
        await stack.runtime.invoke('buy', { outTradeNo }, { OPENID: 'o_cp', SOURCE: 'wx_client' })
      ).result as Record<string, unknown>;
      expect(ordered).toMatchObject({ returnCode: 'SUCCESS', resultCode: 'SUCCESS', errCode: 0 });
      expect(stack.simulator.pay(ordered['payment'] as never)).toEqual({ errMsg: 'requestPayment:ok' });
      await until(
        () => stack.simulator.notifies().find((n) => n.transport === 'function' && n.acknowledged),
        'the callback acknowledged with errcode 0',
      ).catch((e) => {
        throw new Error(`${e.message}: ${JSON.stringify(stack.simulator.notifies())}`);
      });
      const seen = await stack.db.all<{ event: Record<string, unknown>; ctx: Record<string, unknown> }>(
        'payment_events',
        { _id: `callback:${outTradeNo}` },
      );
      expect(seen).toHaveLength(1);
      expect(seen[0]!.event).toMatchObject({ outTradeNo, subMchId: stack.info.merchant.mchid, totalFee: 1 });
      expect(seen[0]!.ctx['SOURCE']).toBe('wx_paycallback');
      expect(seen[0]!.ctx['OPENID']).toBeUndefined();
    } finally {
      await stack.close();
    }
  });
});

/** A `buy` function calling cloudPay and a `payNotify` that records its callback, as built functions. */
function fixtureFunctions(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fns-cp-'));
  dirs.push(dir);
  const init = `const cloud = require('wx-server-sdk');\ncloud.init({ env: cloud.DYNAMIC_CURRENT_ENV, throwOnNotFound: false });\n`;
  const fns: Record<string, string> = {
    buy: `${init}exports.main = async (event) => cloud.cloudPay.unifiedOrder({
  body: 'stack', outTradeNo: event.outTradeNo, spbillCreateIp: '127.0.0.1', subMchId: process.env.WXPAY_MCHID,
  totalFee: 1, envId: process.env.WXPAY_CLOUDPAY_ENV, functionName: process.env.WXPAY_CLOUDPAY_PAY_FUNCTION,
  nonceStr: 'n' + Date.now(), tradeType: 'JSAPI', openid: cloud.getWXContext().OPENID,
});
`,
    payNotify: `${init}exports.main = async (event) => {
  // CloudBase creates no collection on first write; payment_events exists in this stack.
  await cloud.database().collection('payment_events').add({ data: { _id: 'callback:' + event.outTradeNo, event, ctx: cloud.getWXContext() } });
  return { errcode: 0, errmsg: 'OK' };
};
`,
  };
  for (const [name, code] of Object.entries(fns)) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'index.js'), code);
    writeFileSync(join(dir, name, 'config.json'), '{"timeout": 10}');
    // Plain JavaScript runs on any Node; the runtime wants the major recorded all the same.
    writeFileSync(
      join(dir, name, 'package.json'),
      JSON.stringify({ name, main: 'index.js', engines: { node: enginesRange(configuredRuntime()) } }),
    );
  }
  return dir;
}
