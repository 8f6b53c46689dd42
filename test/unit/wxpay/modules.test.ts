/**
 * Every module of the shared library loads, and does something, on a cold import. Imported
 * inside the test on purpose: a module that throws while loading (a bad constant, a
 * decoder with an unknown label) then fails this test instead of failing to collect a file,
 * which the mutation runner would not count (TESTING.md).
 */
import { describe, expect, it } from 'vitest';

describe('the shared library on a cold import', () => {
  it('loads the codec and uses each part once', async () => {
    const wxpay = await import('../../../cloudfunctions/shared/wxpay');
    expect(wxpay.parseXml(Buffer.from('<xml><a>中</a></xml>'))).toEqual({ a: '中' });
    expect(wxpay.SIGN_TYPES).toEqual(['MD5', 'HMAC-SHA256']);
    expect(wxpay.nonceStr()).toHaveLength(32);
    expect(wxpay.toXml({ a: 1 })).toBe('<xml><a>1</a></xml>');
    expect(wxpay.BILL_ALL_COLUMNS).toHaveLength(27);
    expect(wxpay.BILL_SUMMARY_COLUMNS).toHaveLength(7);
  });

  it('loads the runtime wrappers', async () => {
    const callable = await import('../../../cloudfunctions/shared/runtime/callable');
    expect(callable.eventFields({ a: 1, userInfo: {} })).toEqual({ a: 1 });
  });
});
