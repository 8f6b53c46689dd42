/**
 * The checks behind `npm run doctor`: what goes wrong when a shop goes live on WeChat Pay
 * APIv2, found before the first customer finds it. Each check belongs to a stage: what the
 * first deploy needs, or what the first payment needs (the admins' openids, for one, exist
 * only once the deployed mini-program shows them). Pure functions of the variables and an
 * injected clock; the online check takes the base URL from the variables, so tests aim it at
 * the local simulator.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { ConfigError, type ConfigNeeds, loadConfig } from '../../cloudfunctions/shared/config';
import { createWxPayClient, WxPayApiError, WxPayNetworkError } from '../../cloudfunctions/shared/wxpay';
import { chooseRuntime, DEFAULT_RUNTIME, isEndOfLife } from '../runtimes';
import { openPkcs12 } from './pkcs12';
import {
  DEFAULT_REGION,
  ENV_LIMIT_BYTES,
  enabledProviders,
  envBytes,
  functionEnvironment,
  notifyTargets,
  parseNeeds,
} from './plan';
import { checkCloudPay, checkOnlineV3, checkV3 } from './provider-checks';

export type CheckStatus = 'ok' | 'fail' | 'warn';

/** When it matters: before the first deploy, or before the first real payment. */
export type CheckStage = 'deploy' | 'payment';

export interface Check {
  status: CheckStatus;
  name: string;
  detail: string;
  /** What to do about it (for fail and warn). */
  fix?: string;
  /** Default 'deploy'. */
  stage?: CheckStage;
}

const atPayment = (c: Check): Check => ({ ...c, stage: 'payment' });

const ok = (name: string, detail: string): Check => ({ status: 'ok', name, detail });
const fail = (name: string, detail: string, fix: string): Check => ({ status: 'fail', name, detail, fix });
const warn = (name: string, detail: string, fix: string): Check => ({ status: 'warn', name, detail, fix });

const PRODUCTION_HOSTS = new Set(['api.mch.weixin.qq.com', 'api2.mch.weixin.qq.com']);
const EXPIRY_WARNING_DAYS = 30;
const DAY_MS = 24 * 3600 * 1000;
const API_KEY_FIX =
  'copy the APIv2 key from 商户平台 → 账户中心 → API安全 → APIv2密钥: 32 letters and digits, not the APIv3 key, not the AppSecret';

function pemOrBase64(value: string): string {
  const v = value.trim();
  if (v.startsWith('-----BEGIN')) return v.replace(/\\n/g, '\n');
  const decoded = Buffer.from(v, 'base64').toString('utf8');
  return decoded.trim().startsWith('-----BEGIN') ? decoded : v;
}

function checkAppid(v: string | undefined): Check {
  const name = 'appid';
  if (!v) return fail(name, 'WXPAY_APPID is missing', 'set the mini-program appid (wx + 16 characters)');
  if (!/^wx[0-9a-zA-Z]{16}$/.test(v))
    return fail(
      name,
      `WXPAY_APPID ${v} is not wx + 16 characters`,
      'copy the AppID from 小程序后台 → 开发管理',
    );
  return ok(name, v);
}

function checkMchId(v: string | undefined): Check {
  const name = 'mch_id';
  if (!v) return fail(name, 'WXPAY_MCHID is missing', 'set the 商户号 (digits) from the merchant platform');
  if (!/^\d{6,12}$/.test(v)) return fail(name, `WXPAY_MCHID ${v} is not 6 to 12 digits`, 'use the 商户号');
  return ok(name, v);
}

function checkApiKey(v: string | undefined): Check {
  const name = 'API key';
  if (!v) return fail(name, 'WXPAY_API_KEY is missing', API_KEY_FIX);
  if (!/^[A-Za-z0-9]{32}$/.test(v)) {
    const why =
      v.length === 32 ? 'has characters other than letters and digits' : `is ${v.length} characters`;
    return fail(name, `WXPAY_API_KEY ${why}, expected 32 letters and digits`, API_KEY_FIX);
  }
  return ok(name, '32 letters and digits');
}

function checkSignType(v: string | undefined): Check {
  const name = 'sign type';
  if (v === undefined) return ok(name, 'MD5 (default)');
  if (v !== 'MD5' && v !== 'HMAC-SHA256') {
    return fail(
      name,
      `WXPAY_SIGN_TYPE ${v} is not a WeChat Pay APIv2 sign type`,
      'set MD5 or HMAC-SHA256 (exactly; paySign must use the same type as unifiedorder)',
    );
  }
  return ok(name, v);
}

function checkNotifyUrl(
  variable: string,
  path: string,
  value: string | undefined,
  domain: string | undefined,
  derived: string,
): Check {
  const name = variable;
  const fix = `leave it unset (deploy derives ${derived}) or set https://<HTTP access domain>${path} (no port, no query)`;
  if (!value)
    return ok(name, `${derived} (derived from the environment id; deploy sets it on the functions)`);
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return fail(name, `${value} is not a URL`, fix);
  }
  // WeChat Pay: "公网域名必须为https", "不能携带参数", and it calls default ports only.
  if (u.protocol !== 'https:') return fail(name, `${value} is not https; WeChat Pay requires https`, fix);
  if (u.port) return fail(name, `${value} has a port; WeChat Pay calls 443 only`, fix);
  if (u.search || value.includes('?'))
    return fail(name, `${value} has a query string; WeChat Pay refuses notify_url with parameters`, fix);
  if (u.hash) return fail(name, `${value} has a #fragment`, fix);
  if (u.pathname !== path) return fail(name, `${value} does not end with the route ${path}`, fix);
  if (domain && u.hostname !== domain) {
    return fail(name, `${value} is not on CLOUDBASE_HTTP_DOMAIN ${domain}`, fix);
  }
  return ok(name, value);
}

function checkAdmins(v: string | undefined): Check {
  const name = 'admin openids';
  const ids = (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const fix =
    'after the first deploy, open the mini-program as each reviewer, copy the openid its 我的 page shows into ADMIN_OPENIDS (comma-separated), and deploy again';
  if (ids.length === 0)
    return atPayment(fail(name, 'ADMIN_OPENIDS is empty: nobody can approve or reject refunds', fix));
  const odd = ids.filter((id) => !/^[A-Za-z0-9_-]{20,40}$/.test(id));
  if (odd.length > 0) return atPayment(warn(name, `${odd.join(', ')} does not look like an openid`, fix));
  return atPayment(ok(name, `${ids.length} admin(s)`));
}

function checkEnvironment(vars: Record<string, string>): Check {
  const envId = vars['CLOUDBASE_ENV_ID'];
  if (!envId) {
    return fail(
      'environment',
      'CLOUDBASE_ENV_ID is missing',
      'copy the environment id from WeChat DevTools → 云开发 → 设置 → 环境ID (e.g. shop-1a2b3c)',
    );
  }
  const region = vars['CLOUDBASE_REGION'];
  return ok(
    'environment',
    `${envId}${region ? ` in ${region}` : ` (region: deploy asks the environment; ${DEFAULT_REGION} assumed until then)`}`,
  );
}

/** The runtime new functions get; end-of-life ones are named (no security fixes, OpenSSL's included). */
export function checkRuntime(value: string | undefined, now: number): Check {
  const name = 'function runtime';
  const chosen = chooseRuntime(value);
  if ('problem' in chosen)
    return fail(name, chosen.problem, `set CLOUDBASE_FUNCTION_RUNTIME=${DEFAULT_RUNTIME} or unset it`);
  const r = chosen.runtime;
  if (isEndOfLife(r, new Date(now))) {
    return warn(
      name,
      `${r.name}: Node.js ${r.major} is end-of-life since ${r.endOfLife}; the process holding the API key gets no security fixes`,
      `set CLOUDBASE_FUNCTION_RUNTIME=${DEFAULT_RUNTIME} (existing functions keep their runtime: delete them in the console to move them)`,
    );
  }
  return ok(
    name,
    `${r.name} (Node.js ${r.major}, security fixes until ${r.endOfLife})${value ? '' : ', the default'}`,
  );
}

function checkHttpDomain(vars: Record<string, string>, derivedDomain: string): Check {
  const name = 'HTTP access domain';
  if (vars['CLOUDBASE_HTTP_DOMAIN']) return atPayment(ok(name, `${vars['CLOUDBASE_HTTP_DOMAIN']} (custom)`));
  return atPayment(
    warn(
      name,
      `the notify URLs use the default domain ${derivedDomain}, which CloudBase rate-limits and means for testing`,
      'bind an ICP-filed (备案) domain in HTTP 访问服务 → 域名管理, set CLOUDBASE_HTTP_DOMAIN, deploy again',
    ),
  );
}

/** project.config.json's appid and app.ts's wx.cloud.init env, as `npm run configure` writes them. */
export function checkMiniProgram(vars: Record<string, string>, root: string | undefined): Check | undefined {
  if (!root) return undefined;
  const name = 'mini-program configuration';
  const fix = 'run npm run configure -- --env-file deploy.env';
  const projectPath = `${root}/project.config.json`;
  const appPath = `${root}/miniprogram/app.ts`;
  if (!existsSync(projectPath) || !existsSync(appPath)) return undefined;
  const appid = (JSON.parse(readFileSync(projectPath, 'utf8')) as { appid?: string }).appid;
  const env = /wx\.cloud\.init\(\{[^}]*\benv:\s*'([^']*)'/.exec(readFileSync(appPath, 'utf8'))?.[1];
  const wrong: string[] = [];
  if (appid !== vars['WXPAY_APPID'])
    wrong.push(`project.config.json appid is ${appid}, not WXPAY_APPID ${vars['WXPAY_APPID'] ?? '(unset)'}`);
  if (env !== vars['CLOUDBASE_ENV_ID'])
    wrong.push(
      `app.ts wx.cloud.init env is ${env ?? '(none)'}, not CLOUDBASE_ENV_ID ${vars['CLOUDBASE_ENV_ID'] ?? '(unset)'}`,
    );
  if (wrong.length) return atPayment(fail(name, wrong.join('; '), fix));
  return atPayment(ok(name, `appid ${appid}, environment ${env}`));
}

function checkBaseUrl(vars: Record<string, string>): Check[] {
  const out: Check[] = [];
  const base = vars['WXPAY_BASE_URL'];
  if (!base) out.push(ok('WeChat Pay endpoint', 'https://api.mch.weixin.qq.com (default)'));
  else {
    let host = '';
    try {
      host = new URL(base).hostname;
    } catch {
      // loadConfig reports it
    }
    if (PRODUCTION_HOSTS.has(host)) out.push(ok('WeChat Pay endpoint', base));
    else
      out.push(
        warn(
          'WeChat Pay endpoint',
          `WXPAY_BASE_URL is ${base}, not WeChat Pay`,
          'remove WXPAY_BASE_URL in production (it is for the local simulator)',
        ),
      );
  }
  if (vars['WXPAY_CA_PEM']) {
    out.push(
      warn(
        'extra CA',
        'WXPAY_CA_PEM is set',
        'remove it in production; WeChat Pay uses a public CA that Node trusts',
      ),
    );
  }
  return out;
}

interface CertMaterial {
  source: 'PEM pair' | 'PKCS#12';
  certPems: string[];
  keyPem: string;
}

// DER of the OID arc 1.2.840.113549.1.12.1 (PKCS#12 PBE algorithms). .1/.2 are RC4, .5/.6 RC2:
// what older merchant-platform downloads use and OpenSSL 3 refuses without its legacy
// provider. The authSafe is not encrypted, so the algorithm identifiers are plain bytes.
const PKCS12_PBE_PREFIX = Buffer.from([0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01]);
const LEGACY_PBE = new Set([1, 2, 5, 6]);

export function usesLegacyPkcs12Cipher(der: Buffer): boolean {
  for (let i = der.indexOf(PKCS12_PBE_PREFIX); i >= 0; i = der.indexOf(PKCS12_PBE_PREFIX, i + 1)) {
    const last = der[i + PKCS12_PBE_PREFIX.length];
    if (last !== undefined && LEGACY_PBE.has(last)) return true;
  }
  return false;
}

function checkCertificate(vars: Record<string, string>, now: number): Check[] {
  const mchId = vars['WXPAY_MCHID'] ?? '';
  const out: Check[] = [];
  const name = 'certificate';
  let material: CertMaterial;
  if (vars['WXPAY_CERT_PEM'] || vars['WXPAY_KEY_PEM']) {
    if (!vars['WXPAY_CERT_PEM'] || !vars['WXPAY_KEY_PEM']) {
      return [
        fail(
          name,
          'only one of WXPAY_CERT_PEM / WXPAY_KEY_PEM is set',
          'set both (apiclient_cert.pem and apiclient_key.pem), e.g. with WXPAY_CERT_PEM_FILE and WXPAY_KEY_PEM_FILE',
        ),
      ];
    }
    material = {
      source: 'PEM pair',
      certPems: [pemOrBase64(vars['WXPAY_CERT_PEM'])],
      keyPem: pemOrBase64(vars['WXPAY_KEY_PEM']),
    };
  } else if (vars['WXPAY_PFX_BASE64']) {
    const der = Buffer.from(vars['WXPAY_PFX_BASE64'], 'base64');
    const passphrase = vars['WXPAY_PFX_PASSPHRASE'] ?? mchId;
    try {
      material = { source: 'PKCS#12', ...openPkcs12(der, passphrase) };
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      return [
        fail(
          name,
          `the PKCS#12 cannot be opened: ${reason}`,
          'check WXPAY_PFX_PASSPHRASE (default: the mch_id) and that WXPAY_PFX_BASE64 is apiclient_cert.p12 in base64',
        ),
      ];
    }
    if (usesLegacyPkcs12Cipher(der)) {
      let nativeNote = 'this Node loads it';
      try {
        createSecureContext({ pfx: der, passphrase });
      } catch {
        nativeNote = "this Node's OpenSSL 3 refuses it";
      }
      out.push(
        ok(
          'PKCS#12 cipher',
          `the .p12 is encrypted with legacy RC2/RC4 (${nativeNote}); deploy converts it to the PEM pair, which every Node loads`,
        ),
      );
    }
  } else {
    return [
      fail(
        name,
        'no merchant API certificate: refunds need mutual TLS',
        'set WXPAY_CERT_PEM_FILE + WXPAY_KEY_PEM_FILE (apiclient_cert.pem, apiclient_key.pem) in deploy.env',
      ),
    ];
  }

  let key: ReturnType<typeof createPrivateKey>;
  let certs: X509Certificate[];
  try {
    key = createPrivateKey(material.keyPem);
  } catch (e) {
    return [
      fail(
        name,
        `the private key cannot be read (${(e as Error).message})`,
        'use apiclient_key.pem as downloaded',
      ),
    ];
  }
  try {
    certs = material.certPems.map((p) => new X509Certificate(p));
  } catch (e) {
    return [
      fail(
        name,
        `the certificate cannot be read (${(e as Error).message})`,
        'use apiclient_cert.pem as downloaded',
      ),
    ];
  }
  // A .p12 may carry the issuer too; the merchant's certificate is the one the key belongs to.
  const cert = certs.find((c) => c.checkPrivateKey(key));
  if (!cert) {
    return [
      ...out,
      fail(
        name,
        `${material.source}: the certificate and the private key do not belong together`,
        'take apiclient_cert.pem and apiclient_key.pem from the same download (商户平台 → API安全 → API证书)',
      ),
    ];
  }
  out.push(ok(name, `${material.source} readable; certificate and key match`));

  const cn = cert.subject
    .split('\n')
    .find((l) => l.startsWith('CN='))
    ?.slice(3);
  if (cn !== mchId) {
    out.push(
      fail(
        'certificate owner',
        `issued to CN=${cn ?? '(none)'}, not to mch_id ${mchId || '(unset)'}`,
        "use the API certificate of this merchant (a service provider's sub-merchant uses the provider's certificate and mch_id)",
      ),
    );
  } else out.push(ok('certificate owner', `CN=${cn}`));

  const notAfter = Date.parse(cert.validTo);
  const notBefore = Date.parse(cert.validFrom);
  const renew = 'renew it in 商户平台 → 账户中心 → API安全 → API证书, then redeploy';
  if (now > notAfter) out.push(fail('certificate validity', `expired on ${cert.validTo}`, renew));
  else if (now < notBefore)
    out.push(fail('certificate validity', `not valid before ${cert.validFrom}`, 'check the clock'));
  else {
    const days = Math.floor((notAfter - now) / DAY_MS);
    if (days < EXPIRY_WARNING_DAYS)
      out.push(warn('certificate validity', `expires in ${days} days (${cert.validTo})`, renew));
    else out.push(ok('certificate validity', `valid until ${cert.validTo} (${days} days)`));
  }
  return out;
}

/**
 * What the functions with the largest environments declare (their notice templates too): those
 * holding the certificate, and those that only pay.
 */
function paymentNeeds(): [string, ConfigNeeds][] {
  const refunding = { wxpay: true, cert: true, notices: 'all' } as const;
  const paying = { wxpay: true, notices: 'all' } as const;
  return [
    ['approveRefund', needsOf('approveRefund', refunding)],
    ['reconcile', needsOf('reconcile', refunding)],
    ['createOrder', needsOf('createOrder', paying)],
    ['payNotify', needsOf('payNotify', paying)],
  ];
}

function needsOf(fn: string, fallback: ConfigNeeds): ConfigNeeds {
  const entry = join(__dirname, '../../cloudfunctions', fn, 'index.ts');
  return (existsSync(entry) ? parseNeeds(readFileSync(entry, 'utf8')) : undefined) ?? fallback;
}

function checkEnvSize(vars: Record<string, string>): Check {
  // Measured as in production: the simulator-only variables are reported separately and go.
  const { WXPAY_CA_PEM: _ca, WXPAY_BASE_URL: _base, ...production } = vars;
  // The largest environment: the functions that refund, or those that only pay (with APIv3 the
  // key travels without the certificate), each with the notice templates it declares.
  const sizes = paymentNeeds().map(([fn, n]) => {
    const env = functionEnvironment(n, production);
    const notices = Object.entries(env).filter(([k]) => k.startsWith('NOTICE_'));
    return { fn, bytes: envBytes(env), noticeBytes: envBytes(Object.fromEntries(notices)) };
  });
  const largest = sizes.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  const name = 'function environment size';
  if (largest.bytes > ENV_LIMIT_BYTES) {
    const over = sizes.filter((s) => s.bytes > ENV_LIMIT_BYTES);
    return fail(
      name,
      `${over.map((s) => `${s.fn} ${s.bytes} bytes`).join(', ')}: over SCF's ${ENV_LIMIT_BYTES}${largest.noticeBytes > 0 ? ` (${largest.noticeBytes} of them NOTICE_* templates)` : ''}`,
      `use the PEM pair rather than the base64 .p12, give APIv3 WXPAY_V3_CERT_SERIAL instead of relying on the certificate, drop platform certificates once the public key is in use, drop variables left at their default${largest.noticeBytes > 0 ? ", map fewer fields in those functions' notice templates" : ''}${enabledProviders(vars).length > 1 ? ', and drop a kept provider from WXPAY_KEEP_PROVIDERS once none of its orders can change' : ''}`,
    );
  }
  return ok(name, `${largest.bytes} of ${ENV_LIMIT_BYTES} bytes (${largest.fn})`);
}

function checkLoadConfig(vars: Record<string, string>): Check {
  const name = 'functions start';
  try {
    // Every notice template too: a miswritten one would stop the functions that render it.
    loadConfig(vars, { wxpay: true, cert: true, notices: 'all' });
    return ok(name, 'loadConfig accepts this configuration');
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return fail(name, `loadConfig refuses it: ${e.problems.join('; ')}`, 'fix the lines above');
  }
}

/**
 * Every check that needs no network. `now` is injected so expiry is testable; `root` (the
 * repository) adds the mini-program's own configuration.
 */
export function checkConfiguration(
  vars: Record<string, string>,
  opts: { now: number; root?: string },
): Check[] {
  // The notify URLs deploy will set when they are not given.
  const targets = notifyTargets(vars, {
    envId: vars['CLOUDBASE_ENV_ID'] ?? '',
    region: vars['CLOUDBASE_REGION'] ?? DEFAULT_REGION,
  });
  const effective = targets.vars;
  const mini = checkMiniProgram(vars, opts.root);
  // Each provider in use is checked: the one new orders take (WXPAY_PROVIDER) and those kept
  // for earlier orders (WXPAY_KEEP_PROVIDERS).
  const providers = enabledProviders(vars);
  const v2 = providers.includes('v2');
  const http = v2 || providers.includes('v3');
  return [
    checkEnvironment(vars),
    checkRuntime(vars['CLOUDBASE_FUNCTION_RUNTIME'], opts.now),
    checkLoadConfig(effective),
    ok(
      'providers',
      `new orders: ${providers[0]}${providers.length > 1 ? `; kept for earlier orders: ${providers.slice(1).join(', ')}` : ''}`,
    ),
    checkAppid(vars['WXPAY_APPID']),
    checkMchId(vars['WXPAY_MCHID']),
    ...(v2 ? [checkApiKey(vars['WXPAY_API_KEY']), checkSignType(vars['WXPAY_SIGN_TYPE'])] : []),
    ...(http
      ? targets.urls.map((u) =>
          checkNotifyUrl(
            u.variable,
            u.path,
            vars[u.variable],
            vars['CLOUDBASE_HTTP_DOMAIN'],
            `https://${targets.domain}${u.path}`,
          ),
        )
      : []),
    // APIv2 refunds need the client certificate; APIv3 needs only its key and serial.
    ...(v2 ? checkCertificate(vars, opts.now) : []),
    ...(providers.includes('v3') ? checkV3(vars, opts.now) : []),
    ...(providers.includes('cloudpay') ? checkCloudPay(vars) : []),
    checkEnvSize(effective),
    ...checkBaseUrl(vars),
    checkAdmins(vars['ADMIN_OPENIDS']),
    ...(http ? [checkHttpDomain(vars, targets.domain)] : []),
    ...(mini ? [mini] : []),
  ];
}

/** The online check of every provider in use that can be reached from here. */
export async function checkOnlineProviders(vars: Record<string, string>): Promise<Check[]> {
  const providers = enabledProviders(vars);
  const out: Check[] = [];
  if (providers.includes('v2')) out.push(await checkOnline(vars));
  if (providers.includes('v3')) out.push(atPayment(await checkOnlineV3(vars)));
  if (providers.includes('cloudpay')) {
    out.push(
      atPayment(
        warn(
          'cloudPay round trip',
          'not attempted: cloudPay calls need the cloud-call context of a function the mini-program invokes',
          'pay 1 fen from the mini-program after deploy and watch payNotify log payNotify.done',
        ),
      ),
    );
  }
  return out;
}

/**
 * A signed orderquery for an order that cannot exist. WeChat checks the signature before
 * looking the order up, so a signed ORDERNOTEXIST proves appid, mch_id, API key and sign type
 * together, and moves no money.
 */
export async function checkOnline(
  vars: Record<string, string>,
  opts: { outTradeNo?: string } = {},
): Promise<Check> {
  return atPayment(await roundTrip(vars, opts));
}

async function roundTrip(vars: Record<string, string>, opts: { outTradeNo?: string }): Promise<Check> {
  const name = 'WeChat Pay round trip';
  const base = vars['WXPAY_BASE_URL'] ?? 'https://api.mch.weixin.qq.com';
  const outTradeNo = opts.outTradeNo ?? `DOCTOR${Date.now()}`;
  let client: ReturnType<typeof createWxPayClient>;
  try {
    client = createWxPayClient({
      appid: vars['WXPAY_APPID'] ?? '',
      mchId: vars['WXPAY_MCHID'] ?? '',
      apiKey: vars['WXPAY_API_KEY'] ?? '',
      signType: (vars['WXPAY_SIGN_TYPE'] ?? 'MD5') as 'MD5',
      baseUrl: base,
      caPem: vars['WXPAY_CA_PEM'] ? pemOrBase64(vars['WXPAY_CA_PEM']) : undefined,
      maxAttempts: 1,
    });
  } catch (e) {
    return fail(name, `not attempted: ${(e as Error).message}`, 'fix the configuration above first');
  }
  try {
    await client.orderQuery({ out_trade_no: outTradeNo });
    return ok(name, `orderquery ${outTradeNo} answered SUCCESS with a valid signature`);
  } catch (e) {
    if (e instanceof WxPayNetworkError) {
      return fail(
        name,
        `cannot reach ${base}: ${e.message}`,
        'check the network, WXPAY_BASE_URL and WXPAY_CA_PEM',
      );
    }
    if (!(e instanceof WxPayApiError)) throw e;
    if (e.code === 'WXPAY_RESULT_FAIL' && e.errCode === 'ORDERNOTEXIST') {
      // The client verified the signature of a signed answer before judging it.
      if (e.raw?.['sign'])
        return ok(name, 'signed ORDERNOTEXIST: appid, mch_id, API key and sign type are right');
      return warn(name, 'ORDERNOTEXIST without a signature: the key is not proven', 'run it again later');
    }
    const msg = e.returnMsg ?? '';
    if (e.code === 'WXPAY_RETURN_FAIL' && /签名错误|SIGNERROR/i.test(msg)) {
      return fail(
        name,
        `WeChat Pay answered 签名错误 (SIGNERROR): it signs with another key`,
        `${API_KEY_FIX}; and WXPAY_SIGN_TYPE must be the type the key is used with`,
      );
    }
    if (/appid|mch_id|APPID|MCHID/.test(`${msg} ${e.errCode ?? ''}`)) {
      return fail(
        name,
        `WeChat Pay refused the merchant: ${e.errCode ?? ''} ${msg || e.errCodeDes || ''}`.trim(),
        'check WXPAY_APPID and WXPAY_MCHID, and that the appid is bound to the merchant (商户平台 → 产品中心 → AppID账号管理)',
      );
    }
    if (e.code === 'WXPAY_BAD_RESPONSE') {
      return fail(name, e.message, 'check WXPAY_API_KEY and WXPAY_SIGN_TYPE');
    }
    return fail(name, e.message, 'see docs/GOING_LIVE.md "Troubleshooting"');
  }
}

const ICON: Record<CheckStatus, string> = { ok: '✔', fail: '✖', warn: '!' };

export function renderChecks(checks: Check[]): string {
  return checks
    .map((c) => `${ICON[c.status]} ${c.name}: ${c.detail}${c.fix && c.status !== 'ok' ? ` → ${c.fix}` : ''}`)
    .join('\n');
}

/** Checks grouped by the stage they block, with a one-line verdict for each stage. */
export function renderStages(checks: Check[]): string {
  const deploy = checks.filter((c) => (c.stage ?? 'deploy') === 'deploy');
  const payment = checks.filter((c) => c.stage === 'payment');
  const count = (cs: Check[], s: CheckStatus) => cs.filter((c) => c.status === s).length;
  const verdict = (cs: Check[], what: string) => {
    const f = count(cs, 'fail');
    return f === 0
      ? `ready for ${what}${count(cs, 'warn') ? ` (${count(cs, 'warn')} warning(s))` : ''}`
      : `not ready for ${what}: ${f} to fix (${cs
          .filter((c) => c.status === 'fail')
          .map((c) => c.name)
          .join(', ')})`;
  };
  return [
    'Needed before the first deploy:',
    renderChecks(deploy),
    '',
    'Needed before the first payment:',
    renderChecks(payment),
    '',
    verdict(deploy, 'the first deploy'),
    verdict(payment, 'the first payment'),
  ].join('\n');
}
