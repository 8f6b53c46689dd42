import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../../sandbox/stack';
import { usesLegacyPkcs12Cipher } from '../../scripts/golive/checks';
import { withPemPair } from '../../scripts/golive/pkcs12';
import { hasOpenssl, makeLegacyP12 } from '../deploy/helpers';
import { ADMIN, buyAndPay, newRequestId, order, refund, SHOPPER, testStack, unwrap } from './support';

let stack: Stack | undefined;
const dir = mkdtempSync(join(tmpdir(), 'legacy-p12-'));
afterAll(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!hasOpenssl())("an RC2-40 apiclient_cert.p12 on the functions' runtime", () => {
  let legacy: Buffer;
  beforeAll(async () => {
    // A stack first, for its merchant certificate; then the .p12 made the merchant platform's way.
    // One data folder for every stack here: the same CA and merchant certificate each time.
    stack = await testStack({ dataDir: join(dir, 'data') });
    const m = stack.info.merchant;
    legacy = makeLegacyP12({
      certPath: m.certPath,
      keyPath: m.keyPath,
      mchId: m.mchid,
      out: join(dir, 'apiclient_cert.p12'),
    });
    expect(usesLegacyPkcs12Cipher(legacy)).toBe(true);
    await stack.close();
    stack = undefined;
  });

  it('refunds end to end with the PEM pair deploy converts it to', async () => {
    const converted = withPemPair({ WXPAY_PFX_BASE64: legacy.toString('base64'), WXPAY_MCHID: '1900000109' });
    // Nothing else of the .p12 reaches the functions.
    expect(converted.vars['WXPAY_PFX_BASE64']).toBeUndefined();
    expect(converted.problem).toBeUndefined();
    stack = await testStack({
      dataDir: join(dir, 'data'),
      env: {
        WXPAY_CERT_PEM: converted.vars['WXPAY_CERT_PEM']!,
        WXPAY_KEY_PEM: converted.vars['WXPAY_KEY_PEM']!,
      },
    });
    const orderId = await buyAndPay(stack);
    const applied = unwrap(
      await stack.call(
        'applyRefund',
        { orderId, refundFee: 6800, reason: '旧证书', requestId: newRequestId() },
        SHOPPER,
      ),
    );
    const approved = unwrap(
      await stack.call('approveRefund', { refundId: applied.refund.refundId, decision: 'approve' }, ADMIN),
    );
    expect(approved.refund.status).toBe('PROCESSING');
    // WeChat finishes it (now, or already on its own timer) and its notify is delivered.
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    expect((await refund(stack, applied.refund.refundId)).status).toBe('SUCCESS');
    expect((await order(stack, orderId)).refundedFee).toBe(6800);
    await stack.close();
    stack = undefined;
  });

  it('handed over as it is, the functions refuse it at the refund with a clear message', async () => {
    stack = await testStack({
      dataDir: join(dir, 'data'),
      env: { WXPAY_CERT_PEM: '', WXPAY_KEY_PEM: '', WXPAY_PFX_BASE64: legacy.toString('base64') },
    });
    const orderId = await buyAndPay(stack);
    const applied = unwrap(
      await stack.call(
        'applyRefund',
        { orderId, refundFee: 100, reason: '旧证书', requestId: newRequestId() },
        SHOPPER,
      ),
    );
    const out = await stack.call(
      'approveRefund',
      { refundId: applied.refund.refundId, decision: 'approve' },
      ADMIN,
    );
    expect(out).toMatchObject({ ok: false, error: { code: 'CONFIG_INVALID' } });
    expect(JSON.stringify(out)).toContain('PKCS#12');
    expect(stack.simulator.ledger().refunds.filter((w) => w.outTradeNo === orderId)).toHaveLength(0);
  });
});
