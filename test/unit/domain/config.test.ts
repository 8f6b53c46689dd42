import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, ConfigError, loadConfig } from '../../../cloudfunctions/shared/config';
import { redact, setLogSink } from '../../../cloudfunctions/shared/log';

const KEY = `${'K'.repeat(16)}0123456789abcdef`;
const GOOD = {
  WXPAY_APPID: 'wxd930ea5d5a258f4f',
  WXPAY_MCHID: '1900000109',
  WXPAY_API_KEY: KEY,
  WXPAY_SIGN_TYPE: 'HMAC-SHA256',
  WXPAY_NOTIFY_URL: 'https://env-1.service.tcloudbase.com/pay/notify',
  WXPAY_REFUND_NOTIFY_URL: 'https://env-1.service.tcloudbase.com/refund/notify',
  WXPAY_CERT_PEM: '-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----',
  // A placeholder, not a key; built at run time so no file in the repo carries a key header.
  WXPAY_KEY_PEM: `-----BEGIN ${'PRIVATE'} KEY-----\\nMIIE\\n-----END ${'PRIVATE'} KEY-----`,
  ADMIN_OPENIDS: 'o_admin1, o_admin2',
};

function problems(env: Record<string, string | undefined>, needs = { wxpay: true, cert: true }): string[] {
  try {
    loadConfig(env, needs);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).code).toBe('CONFIG_INVALID');
    return (e as ConfigError).problems;
  }
  return [];
}

describe('loadConfig', () => {
  it('reads a complete configuration', () => {
    const c = loadConfig(GOOD, { wxpay: true, cert: true });
    expect(c.wxpay).toMatchObject({
      appid: GOOD.WXPAY_APPID,
      mchId: '1900000109',
      signType: 'HMAC-SHA256',
      baseUrl: 'https://api.mch.weixin.qq.com',
    });
    expect([...c.adminOpenids]).toEqual(['o_admin1', 'o_admin2']);
    expect(c.orderExpireMs).toBe(30 * 60_000);
    expect(c.cert && 'certPem' in c.cert && c.cert.certPem).toContain('\n');
  });

  it('names every missing variable in one error, not one per deploy', () => {
    const p = problems({});
    for (const v of [
      'WXPAY_APPID',
      'WXPAY_MCHID',
      'WXPAY_API_KEY',
      'WXPAY_NOTIFY_URL',
      'WXPAY_REFUND_NOTIFY_URL',
    ]) {
      expect(p.some((x) => x.startsWith(`${v} is missing`))).toBe(true);
    }
    expect(p.some((x) => x.includes('merchant certificate is missing'))).toBe(true);
  });

  it('explains malformed values', () => {
    const p = problems({
      ...GOOD,
      WXPAY_API_KEY: 'short',
      WXPAY_SIGN_TYPE: 'SHA1',
      WXPAY_NOTIFY_URL: 'http://example.com/pay/notify',
      WXPAY_REFUND_NOTIFY_URL: 'https://example.com/refund/notify?x=1',
      WXPAY_APPID: 'appid',
      ORDER_EXPIRE_MINUTES: '600',
    });
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringContaining('WXPAY_API_KEY must be exactly 32'),
        'WXPAY_SIGN_TYPE must be MD5 or HMAC-SHA256',
        'WXPAY_NOTIFY_URL must be https',
        'WXPAY_REFUND_NOTIFY_URL must not have a query string',
        expect.stringContaining('WXPAY_APPID'),
        expect.stringContaining('ORDER_EXPIRE_MINUTES'),
      ]),
    );
  });

  it('never puts the API key in its message', () => {
    try {
      loadConfig({ ...GOOD, WXPAY_API_KEY: `${KEY}x` }, { wxpay: true });
      expect.unreachable();
    } catch (e) {
      expect((e as Error).message).not.toContain(KEY);
    }
  });

  it('reads ADMIN_OPENIDS as a trimmed list, and an empty or blank one as no admins at all', () => {
    expect([...loadConfig({ ...GOOD }, {}).adminOpenids]).toEqual(['o_admin1', 'o_admin2']);
    for (const blank of [undefined, '', '  ', ' , ', ',,']) {
      expect(loadConfig({ ADMIN_OPENIDS: blank }, {}).adminOpenids.size).toBe(0);
    }
  });

  it('asks functions only for what they use: listings need no merchant key', () => {
    expect(() => loadConfig({ ADMIN_OPENIDS: 'o1' }, {})).not.toThrow();
    expect(
      problems({ ...GOOD, WXPAY_CERT_PEM: '', WXPAY_KEY_PEM: '' }, { wxpay: true, cert: false }),
    ).toEqual([]);
  });

  it('allows plain http only for a local simulator', () => {
    const local = {
      ...GOOD,
      WXPAY_BASE_URL: 'https://127.0.0.1:9443',
      WXPAY_NOTIFY_URL: 'http://127.0.0.1:1/http/pay/notify',
    };
    expect(problems(local)).toEqual([]);
    expect(problems({ ...GOOD, WXPAY_BASE_URL: 'http://api.example.com' })).toContain(
      'WXPAY_BASE_URL must be https',
    );
  });

  it('documents every variable it reads', () => {
    expect(Object.keys(CONFIG_VARIABLES)).toEqual(expect.arrayContaining(Object.keys(GOOD)));
  });

  it('reads and checks only the notice templates a function renders, named in one error with the rest', () => {
    const tpl = `${'t'.repeat(43)} character_string1=orderId amount2=amount`;
    const env = { ...GOOD, NOTICE_ORDER_PAID: tpl, NOTICE_REFUND_APPLIED: 'broken' };
    const paid = loadConfig(env, { wxpay: true, notices: ['order_paid'] });
    expect(Object.keys(paid.notices.templates)).toEqual(['order_paid']);
    expect(paid.notices.miniprogramState).toBe('formal');
    // A broken variable stops the functions that use it, with the other problems.
    expect(
      problems({ ...env, WXPAY_MCHID: '' }, { wxpay: true, notices: ['refund_applied'] } as never),
    ).toEqual([
      `WXPAY_MCHID is missing (${CONFIG_VARIABLES.WXPAY_MCHID})`,
      'NOTICE_REFUND_APPLIED must start with the template id (letters, digits, _ and -), then "<template id> <keyword>=<variable> …"',
    ]);
    expect(() => loadConfig(env, { notices: 'all' })).toThrow(ConfigError);
    const all = loadConfig({ ...env, NOTICE_REFUND_APPLIED: tpl }, { notices: 'all' });
    expect(Object.keys(all.notices.templates)).toEqual(['order_paid', 'refund_applied']);
    expect(loadConfig(env, {}).notices.templates).toEqual({});
    expect(Object.keys(CONFIG_VARIABLES)).toEqual(
      expect.arrayContaining(['NOTICE_ORDER_PAID', 'NOTICE_MINIPROGRAM_STATE']),
    );
  });

  it('registers secrets so the logger redacts them', () => {
    loadConfig(GOOD, { wxpay: true, cert: true });
    const lines: string[] = [];
    const prev = setLogSink((l) => lines.push(l));
    try {
      expect(redact(`key=${KEY}`)).toBe('key=[REDACTED]');
    } finally {
      setLogSink(prev);
    }
  });

  it('refuses a notify sign-type list without the sign type new orders use', () => {
    expect(() =>
      loadConfig(
        { ...GOOD, WXPAY_SIGN_TYPE: 'HMAC-SHA256', WXPAY_NOTIFY_SIGN_TYPES: 'MD5' },
        { wxpay: true },
      ),
    ).toThrow(/WXPAY_NOTIFY_SIGN_TYPES must include WXPAY_SIGN_TYPE/);
    expect(loadConfig({ ...GOOD }, { wxpay: true }).wxpay.notifySignTypes).toEqual(['MD5', 'HMAC-SHA256']);
  });

  it('keeps WeChat’s 1-minute refund spacing and the sandbox time scale out of production', () => {
    expect(() => loadConfig({ ...GOOD, REFUND_SPACING_MS: '1000' })).toThrow(
      /REFUND_SPACING_MS must be at least 60000/,
    );
    expect(() => loadConfig({ ...GOOD, SANDBOX_TIME_SCALE: '0.01' })).toThrow(
      /SANDBOX_TIME_SCALE is for the local simulator only/,
    );
    const local = loadConfig({
      ...GOOD,
      WXPAY_BASE_URL: 'https://127.0.0.1:8789',
      SANDBOX_TIME_SCALE: '0.01',
    });
    expect(local.refunds.spacingMs).toBe(600);
    expect(local.reconcile.notifyGraceMs).toBe(600);
    expect(() => loadConfig({ ...GOOD, REFUND_MAX_OPEN_PER_ORDER: '0' })).toThrow(
      /REFUND_MAX_OPEN_PER_ORDER/,
    );
  });

  it('reads the preset refund reasons, and refuses a list a shopper could not use', () => {
    const c = loadConfig({
      ...GOOD,
      REFUND_REASONS: ' SIZE:尺码不合适, OTHER:其他 ',
      REFUND_REJECT_REASONS: '已发货,超过售后期',
    });
    expect(c.refunds.reasons).toEqual([
      { code: 'SIZE', label: '尺码不合适' },
      { code: 'OTHER', label: '其他' },
    ]);
    expect(c.refunds.rejectReasons).toEqual(['已发货', '超过售后期']);
    // The defaults: the usual reasons, OTHER included.
    expect(loadConfig(GOOD).refunds.reasons.map((r) => r.code)).toContain('OTHER');
    expect(problems({ ...GOOD, REFUND_REASONS: 'SIZE:尺码不合适' })).toContainEqual(
      expect.stringMatching(/REFUND_REASONS must include OTHER/),
    );
    expect(problems({ ...GOOD, REFUND_REASONS: 'size:小写,OTHER:其他' })).toContainEqual(
      expect.stringMatching(/REFUND_REASONS: "size:小写" must be CODE:label/),
    );
    expect(problems({ ...GOOD, REFUND_REASONS: 'SIZE:,OTHER:其他' })).toContainEqual(
      expect.stringMatching(/the label of SIZE must be 1 to 20 characters/),
    );
    expect(problems({ ...GOOD, REFUND_REASONS: 'OTHER:其他,OTHER:别的' })).toContainEqual(
      expect.stringMatching(/names OTHER twice/),
    );
    expect(problems({ ...GOOD, REFUND_REJECT_REASONS: '太'.repeat(41) })).toContainEqual(
      expect.stringMatching(/REFUND_REJECT_REASONS/),
    );
    // Checked for every function, like the rest: a listing that needs no key still refuses it.
    expect(problems({ REFUND_REASONS: 'SIZE:尺码' }, {} as never)).toContainEqual(
      expect.stringMatching(/REFUND_REASONS/),
    );
  });

  it('refuses a WeChat timeout that cannot fit the function that calls WeChat, and only that one', () => {
    expect(() =>
      loadConfig(
        { ...GOOD, WXPAY_TIMEOUT_MS: '20000' },
        { wxpay: true, calls: true, functionTimeoutMs: 15_000 },
      ),
    ).toThrow(/WXPAY_TIMEOUT_MS \(20000 ms\) does not fit/);
    // payNotify needs the key but never calls WeChat.
    expect(() =>
      loadConfig({ ...GOOD, WXPAY_TIMEOUT_MS: '20000' }, { wxpay: true, functionTimeoutMs: 5_000 }),
    ).not.toThrow();
  });
});
