/**
 * Configuration from function environment variables (docs/ARCHITECTURE.md §3): validated once at cold
 * start, every problem named in one message, secrets registered so logs never print them.
 */
import { AppError } from './errors';
import { registerSecret } from './log';
import { loadNoticeConfig, NOTICE_CONFIG_VARIABLES, NOTICE_ENV, type NoticeConfig } from './notices/config';
import { NOTICE_KINDS, type NoticeKind } from './notices/kinds';
import {
  type CloudPayProviderConfig,
  type PartnerConfig,
  pemOrBase64,
  readCloudPay,
  readPartner,
  readV3,
  type V3ProviderConfig,
} from './providers/config';
import { PROVIDER_NAMES, type ProviderName } from './providers/port';
import {
  DEFAULT_REFUND_REASONS,
  DEFAULT_REJECT_REASONS,
  parseRefundReasons,
  parseRejectReasons,
  type RefundReason,
} from './reasons';
import { isSignType, type SignType } from './wxpay/types';

export type { CloudPayProviderConfig, PartnerConfig, V3ProviderConfig } from './providers/config';

export class ConfigError extends AppError {
  readonly problems: string[];
  constructor(problems: string[]) {
    super('CONFIG_INVALID', `configuration is invalid: ${problems.join('; ')}`);
    this.problems = problems;
  }
}

export type ClientCert = { certPem: string; keyPem: string } | { pfx: Buffer; passphrase: string };

/**
 * The merchant's ids and APIv2's settings. `apiKey`, the sign types and the client
 * certificate are APIv2's; with another provider they are set only while APIv2 is enabled
 * (WXPAY_KEEP_PROVIDERS).
 */
export interface WxPayConfig {
  appid: string;
  mchId: string;
  apiKey: string;
  /** New orders are signed with this type. */
  signType: SignType;
  /**
   * Sign types a pay notify may verify with; the order's own (stored) type must be among
   * them and must be the one that verified. Keeps in-flight orders payable across a switch.
   */
  notifySignTypes: readonly SignType[];
  baseUrl: string;
  caPem: string | undefined;
  payNotifyUrl: string;
  refundNotifyUrl: string;
  timeoutMs: number;
}

/** Which WeChat Pay providers this shop uses (cloudfunctions/shared/providers). */
export interface ProvidersConfig {
  /** Makes new orders (WXPAY_PROVIDER). */
  current: ProviderName;
  /**
   * `current` and the providers of orders made before a switch (WXPAY_KEEP_PROVIDERS): an
   * order's queries, closes and refunds go through the provider that made it.
   */
  enabled: readonly ProviderName[];
  /** Service-provider mode (服务商), v2 and v3. */
  partner: PartnerConfig | undefined;
  v3: V3ProviderConfig | undefined;
  cloudpay: CloudPayProviderConfig | undefined;
}

/** Kinds of call counted per caller per minute (domain/limits.ts). */
export type LimitScope = 'createOrder' | 'applyRefund' | 'reads';

/**
 * Per-caller limits (domain/limits.ts): one shopper's script cannot fill the orders
 * collection or spend the merchant's WeChat Pay call rate, which WeChat counts per merchant.
 */
export interface LimitsConfig {
  /** A shopper's calls per minute, by kind. */
  perMinute: Readonly<Record<LimitScope, number>>;
  /** An admin's calls per minute, for each kind. */
  adminPerMinute: number;
  /** Unpaid orders a shopper may have open (still payable) at once. */
  openOrders: number;
  adminOpenOrders: number;
  /** The same cart again within this time gives back the unpaid order made for it; 0 = off. */
  sameCartMs: number;
}

export interface ShopConfig {
  wxpay: WxPayConfig;
  cert: ClientCert | undefined;
  providers: ProvidersConfig;
  adminOpenids: ReadonlySet<string>;
  /** How long a new order stays payable; prepay_id itself lives 2 hours. */
  orderExpireMs: number;
  shopName: string;
  reconcile: { notifyGraceMs: number; refundQueryDelayMs: number };
  refunds: {
    /** Applications per order whose reservation is still open. */
    maxOpenPerOrder: number;
    /** Between two refund calls for one order (WeChat: at least 1 minute). */
    spacingMs: number;
    /** What a shopper picks from when applying; always includes OTHER. */
    reasons: readonly RefundReason[];
    /** Comments a merchant can pick when rejecting. */
    rejectReasons: readonly string[];
  };
  /** The subscribe message templates of the notices this function writes (ConfigNeeds.notices). */
  notices: NoticeConfig;
  limits: LimitsConfig;
  /**
   * Multiplies every business wait (reconcile's grace, backoff and query delays, refund
   * spacing, notice retries) by this; 1 in production. The sandbox runs WeChat's timings scaled the same way,
   * so the two stay in step. Function and network timeouts are never scaled.
   */
  timeScale: number;
}

/** What a function needs: notify functions need no certificate, listings need no key. */
export interface ConfigNeeds {
  /** Only the appid: the caller's mini-program must be the merchant's. */
  appid?: boolean;
  /** The merchant's ids and every enabled provider's keys and notify URLs. */
  wxpay?: boolean;
  /** APIv2's client certificate (refunds), when APIv2 is enabled. */
  cert?: boolean;
  /** Makes WeChat Pay calls: each must fit in the function's timeout. */
  calls?: boolean;
  /** The function's own timeout (config.json), to check that a WeChat call fits in it. */
  functionTimeoutMs?: number;
  /**
   * The notices this function renders with its own template (`'all'`: every kind), so it
   * gets and checks only those NOTICE_* variables. SCF allows 4 KB of variables per function
   * and the merchant certificate takes 3 of them: a function that writes a notice it was
   * not given leaves it for reconcile to render (notices/outbox.ts). Absent: it writes none.
   */
  notices?: readonly NoticeKind[] | 'all';
}

/** The notice kinds a function with these needs renders itself. */
export function noticeKindsOf(needs: ConfigNeeds): readonly NoticeKind[] {
  return needs.notices === 'all' ? NOTICE_KINDS : (needs.notices ?? []);
}

/**
 * Time kept back from a function's timeout for the database writes after a WeChat call
 * (they store what WeChat answered; a function killed before them loses nothing, but
 * leaves the work to WeChat's retry or reconcile).
 */
export function callReserveMs(functionTimeoutMs: number): number {
  return Math.max(1500, Math.round(functionTimeoutMs * 0.1));
}

/** Why one WeChat call attempt of `wxpayTimeoutMs` cannot finish inside the function, or undefined. */
export function callBudgetProblem(functionTimeoutMs: number, wxpayTimeoutMs: number): string | undefined {
  const usable = functionTimeoutMs - callReserveMs(functionTimeoutMs);
  if (wxpayTimeoutMs <= usable) return undefined;
  return (
    `WXPAY_TIMEOUT_MS (${wxpayTimeoutMs} ms) does not fit a function with a ${functionTimeoutMs / 1000} s ` +
    `timeout: at most ${usable} ms is left for a WeChat Pay call after keeping ${callReserveMs(functionTimeoutMs)} ms ` +
    'to store its answer; lower WXPAY_TIMEOUT_MS or raise the timeout in config.json'
  );
}

/** Every variable, for the README, deploy and doctor. */
export const CONFIG_VARIABLES = {
  WXPAY_PROVIDER:
    'v2 (default), v3 or cloudpay: how new orders are paid; every order keeps the provider that made it',
  WXPAY_KEEP_PROVIDERS:
    "after a switch: the earlier providers' orders still to query, close and refund through them, comma-separated (e.g. v2); their variables must stay set",
  WXPAY_APPID: 'mini-program appid the merchant account is bound to (wx + 16 hex)',
  WXPAY_MCHID:
    'merchant id (商户号), digits; cloudPay: the merchant bound to the environment; service provider: its own',
  WXPAY_API_KEY:
    'APIv2 key (API密钥), exactly 32 letters and digits; not the APIv3 key, not the AppSecret (v2)',
  WXPAY_SIGN_TYPE:
    'MD5 (WeChat default) or HMAC-SHA256; new APIv2 orders are signed with it (unifiedorder, paySign)',
  WXPAY_NOTIFY_SIGN_TYPES:
    'sign types an APIv2 pay notify may verify with, comma-separated (default MD5,HMAC-SHA256); each order is checked with its own',
  WXPAY_NOTIFY_URL: 'https URL of payNotify through HTTP access, no query string (v2, v3)',
  WXPAY_REFUND_NOTIFY_URL: 'https URL of refundNotify through HTTP access, no query string (v2, v3)',
  WXPAY_CERT_PEM:
    'apiclient_cert.pem content (or base64 of it); with WXPAY_KEY_PEM (v2 refunds; v3 reads its serial from it)',
  WXPAY_KEY_PEM:
    'apiclient_key.pem content (or base64 of it); v3 signs with it unless WXPAY_V3_PRIVATE_KEY_PEM',
  WXPAY_PFX_BASE64: 'apiclient_cert.p12, base64; alternative to the PEM pair (v2)',
  WXPAY_PFX_PASSPHRASE: 'passphrase of the .p12 (default: the mch_id)',
  WXPAY_SUB_MCHID:
    "service-provider mode (服务商, v2 and v3): the sub-merchant; WXPAY_APPID/WXPAY_MCHID and the keys are then the service provider's",
  WXPAY_SUB_APPID: "service-provider mode: the sub-merchant's mini program; payers are then sub_openid",
  WXPAY_V3_KEY: 'APIv3 key (APIv3密钥), exactly 32 bytes; not the APIv2 key (v3)',
  WXPAY_V3_CERT_SERIAL:
    'serial of the merchant API certificate (证书序列号, 40 hex); read from WXPAY_CERT_PEM when that is set (v3)',
  WXPAY_V3_PRIVATE_KEY_PEM: 'apiclient_key.pem content (or base64 of it); default WXPAY_KEY_PEM (v3)',
  WXPAY_V3_PUBLIC_KEY_ID: 'WeChat Pay public key ID (微信支付公钥ID), PUB_KEY_ID_ followed by digits (v3)',
  WXPAY_V3_PUBLIC_KEY_PEM: 'pub_key.pem content (or base64 of it), the WeChat Pay public key (v3)',
  WXPAY_V3_PLATFORM_CERTS_PEM:
    'platform certificates (平台证书), one or more PEM certificates (or base64 of them); older merchants only (v3)',
  WXPAY_CLOUDPAY_ENV:
    "cloudPay: the environment whose functions get the callbacks (default: this function's own)",
  WXPAY_CLOUDPAY_PAY_FUNCTION: 'cloudPay: the function the pay callback invokes (default payNotify)',
  WXPAY_CLOUDPAY_REFUND_FUNCTION: 'cloudPay: the function the refund callback invokes (default refundNotify)',
  WXPAY_CLOUDPAY_APPID: "cloudPay in a shared environment (资源复用): the mini program's appid",
  WXPAY_BASE_URL: 'APIv2/APIv3 base URL (default https://api.mch.weixin.qq.com)',
  WXPAY_CA_PEM: 'extra CA to trust (only for the local simulator)',
  WXPAY_TIMEOUT_MS:
    'per-attempt timeout for WeChat Pay calls in ms (default 8000); every call also ends before its function times out',
  ADMIN_OPENIDS: 'comma-separated openids allowed to review refunds',
  ORDER_EXPIRE_MINUTES: 'minutes a new order stays payable, 5 to 120 (default 30)',
  SHOP_NAME: 'shown in the WeChat cashier as the body prefix (default 小店)',
  RECONCILE_GRACE_SECONDS: 'reconcile waits this long for a pay notify before asking orderquery (default 60)',
  REFUND_QUERY_DELAY_SECONDS:
    'reconcile asks refundquery about a refund this long after WeChat accepted it (default 60)',
  REFUND_MAX_OPEN_PER_ORDER: 'refund applications of one order that may be open at once, 1 to 50 (default 5)',
  REFUND_REASONS:
    'the reasons a shopper picks from, CODE:label comma-separated, including OTHER (default: NOT_WANTED:不想要了,… ,OTHER:其他)',
  REFUND_REJECT_REASONS:
    'comments the merchant can pick when rejecting a refund, comma-separated (default: 商品已发货，请收货后申请退货退款,…)',
  REFUND_SPACING_MS:
    "least time between two refund calls for one order in ms (default 60000, WeChat's rule; less only against the local simulator)",
  LIMIT_CREATE_ORDER_PER_MINUTE:
    'createOrder calls one shopper may make per minute, 1 to 1000 (default 20); paying again that only re-signs the stored prepay_id is not counted',
  LIMIT_APPLY_REFUND_PER_MINUTE: 'applyRefund calls one shopper may make per minute, 1 to 1000 (default 10)',
  LIMIT_READS_PER_MINUTE:
    "listing calls (listProducts, listOrders, listRefunds, listBillChecks, getRefund) and queryOrder's questions to WeChat one caller may make per minute, 1 to 1000 (default 120)",
  LIMIT_ADMIN_PER_MINUTE:
    "an admin's calls per minute, for each kind above, 1 to 1000 (default 300); at least each shopper limit",
  LIMIT_OPEN_ORDERS: 'unpaid orders one shopper may have open (still payable) at once, 1 to 100 (default 10)',
  LIMIT_ADMIN_OPEN_ORDERS:
    'unpaid orders an admin may have open at once, 1 to 100 (default 50); at least LIMIT_OPEN_ORDERS',
  LIMIT_SAME_CART_SECONDS:
    'the same cart ordered again within this many seconds gives back its unpaid order instead of a new one, 0 (off) to 600 (default 30)',
  SANDBOX_TIME_SCALE:
    'local simulator only: business waits run this much faster than in production, 0 < x ≤ 1 (default 1)',
  ...NOTICE_CONFIG_VARIABLES,
} as const;

export type ConfigVariable = keyof typeof CONFIG_VARIABLES;
type Env = Record<string, string | undefined>;

const PROVIDER_LABEL: Record<ProviderName, string> = { v2: 'APIv2', v3: 'APIv3', cloudpay: 'cloudPay' };

function checkNotifyUrl(
  name: string,
  value: string | undefined,
  problems: string[],
  allowHttp: boolean,
): string {
  if (!value) {
    problems.push(`${name} is missing (${CONFIG_VARIABLES[name as ConfigVariable]})`);
    return '';
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    problems.push(`${name} is not a URL`);
    return '';
  }
  if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:'))
    problems.push(`${name} must be https`);
  // WeChat refuses notify_url with parameters: "不能携带参数".
  if (url.search) problems.push(`${name} must not have a query string`);
  return value;
}

/**
 * Reads and validates configuration. Local (sandbox) URLs may be plain http on 127.0.0.1;
 * anything else must be https, as WeChat requires for public notify URLs.
 */
export function loadConfig(env: Env, needs: ConfigNeeds = {}): ShopConfig {
  const problems: string[] = [];
  const get = (k: ConfigVariable) => {
    const v = env[k];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const need = (k: ConfigVariable) => {
    const v = get(k);
    if (v === undefined) problems.push(`${k} is missing (${CONFIG_VARIABLES[k]})`);
    return v ?? '';
  };

  const adminOpenids = new Set(
    (get('ADMIN_OPENIDS') ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

  const expireMin = get('ORDER_EXPIRE_MINUTES') ?? '30';
  if (!/^\d+$/.test(expireMin) || Number(expireMin) < 5 || Number(expireMin) > 120) {
    problems.push('ORDER_EXPIRE_MINUTES must be a whole number from 5 to 120');
  }

  const seconds = (k: ConfigVariable, dflt: string) => {
    const v = get(k) ?? dflt;
    if (!/^\d{1,6}$/.test(v)) problems.push(`${k} must be a whole number of seconds`);
    return Number(v) * 1000;
  };
  const wxpayNeeded = needs.wxpay || needs.cert;
  const baseUrl = get('WXPAY_BASE_URL') ?? 'https://api.mch.weixin.qq.com';
  let local = false;
  try {
    const u = new URL(baseUrl);
    local = u.hostname === '127.0.0.1' || u.hostname === 'localhost';
    if (u.protocol !== 'https:' && !local) problems.push('WXPAY_BASE_URL must be https');
  } catch {
    problems.push('WXPAY_BASE_URL is not a URL');
  }

  const scaleText = get('SANDBOX_TIME_SCALE') ?? '1';
  let timeScale = Number(scaleText);
  if (!/^\d*\.?\d+$/.test(scaleText) || !(timeScale > 0 && timeScale <= 1)) {
    problems.push('SANDBOX_TIME_SCALE must be a number above 0 and at most 1');
    timeScale = 1;
  } else if (timeScale !== 1 && !local) {
    problems.push('SANDBOX_TIME_SCALE is for the local simulator only; remove it in production');
    timeScale = 1;
  }
  const scaled = (ms: number) => Math.round(ms * timeScale);
  const reconcile = {
    notifyGraceMs: scaled(seconds('RECONCILE_GRACE_SECONDS', '60')),
    refundQueryDelayMs: scaled(seconds('REFUND_QUERY_DELAY_SECONDS', '60')),
  };

  const maxOpen = get('REFUND_MAX_OPEN_PER_ORDER') ?? '5';
  if (!/^\d{1,2}$/.test(maxOpen) || Number(maxOpen) < 1 || Number(maxOpen) > 50) {
    problems.push('REFUND_MAX_OPEN_PER_ORDER must be a whole number from 1 to 50');
  }
  const spacing = get('REFUND_SPACING_MS') ?? '60000';
  if (!/^\d{1,7}$/.test(spacing)) problems.push('REFUND_SPACING_MS must be a whole number of ms');
  else if (Number(spacing) < 60_000 && !local) {
    problems.push(
      'REFUND_SPACING_MS must be at least 60000: WeChat wants refunds of one order 1 minute apart',
    );
  }
  const refunds = {
    maxOpenPerOrder: Number(maxOpen),
    spacingMs: scaled(Number(spacing)),
    reasons: parseRefundReasons(get('REFUND_REASONS') ?? DEFAULT_REFUND_REASONS, problems),
    rejectReasons: parseRejectReasons(get('REFUND_REJECT_REASONS') ?? DEFAULT_REJECT_REASONS, problems),
  };
  // Real minutes and seconds, never scaled: they bound what a caller does per minute of
  // their own time, and a double tap is as quick in the sandbox as on a phone.
  const limits = loadLimits(get, problems);

  // ---- providers ----
  // Providers also read the platform's own variables (TCB_ENV), which are not ours to list.
  const anyVar = (k: string) => get(k as ConfigVariable);
  let current: ProviderName = 'v2';
  const currentText = (get('WXPAY_PROVIDER') ?? 'v2').toLowerCase();
  if ((PROVIDER_NAMES as readonly string[]).includes(currentText)) current = currentText as ProviderName;
  else problems.push(`WXPAY_PROVIDER must be one of ${PROVIDER_NAMES.join(', ')}, got ${currentText}`);
  const kept: ProviderName[] = [];
  for (const k of (get('WXPAY_KEEP_PROVIDERS') ?? '')
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean)) {
    if (!(PROVIDER_NAMES as readonly string[]).includes(k))
      problems.push(`WXPAY_KEEP_PROVIDERS lists ${k}; providers are ${PROVIDER_NAMES.join(', ')}`);
    else if (k !== current && !kept.includes(k as ProviderName)) kept.push(k as ProviderName);
  }
  const enabled: ProviderName[] = [current, ...kept];
  const uses = (p: ProviderName) => enabled.includes(p);
  /** A kept provider's problems say why its variables are still needed. */
  const section = (p: ProviderName, read: (problems: string[]) => void) => {
    const own: string[] = [];
    read(own);
    const why = kept.includes(p)
      ? ` (${PROVIDER_LABEL[p]} is kept for the orders it made before WXPAY_PROVIDER changed: WXPAY_KEEP_PROVIDERS)`
      : '';
    for (const x of own) problems.push(`${x}${why}`);
  };

  let wxpay: WxPayConfig = {
    appid: get('WXPAY_APPID') ?? '',
    mchId: '',
    apiKey: '',
    signType: 'MD5',
    notifySignTypes: ['MD5', 'HMAC-SHA256'],
    baseUrl,
    caPem: undefined,
    payNotifyUrl: '',
    refundNotifyUrl: '',
    timeoutMs: 8000,
  };
  let partner: PartnerConfig | undefined;
  let v3: V3ProviderConfig | undefined;
  let cloudpay: CloudPayProviderConfig | undefined;
  if (needs.appid && !wxpayNeeded) {
    const appid = need('WXPAY_APPID');
    if (appid && !/^wx[0-9a-zA-Z]{16}$/.test(appid))
      problems.push('WXPAY_APPID must look like wx followed by 16 characters');
  }
  if (wxpayNeeded) {
    const appid = need('WXPAY_APPID');
    if (appid && !/^wx[0-9a-zA-Z]{16}$/.test(appid))
      problems.push('WXPAY_APPID must look like wx followed by 16 characters');
    const mchId = need('WXPAY_MCHID');
    if (mchId && !/^\d{6,12}$/.test(mchId)) problems.push('WXPAY_MCHID must be 6 to 12 digits');
    partner = readPartner(anyVar, problems, !uses('v2') && !uses('v3'));
    const timeout = get('WXPAY_TIMEOUT_MS') ?? '8000';
    if (!/^\d+$/.test(timeout) || Number(timeout) < 500 || Number(timeout) > 30000) {
      problems.push('WXPAY_TIMEOUT_MS must be from 500 to 30000');
    } else if (needs.calls && needs.functionTimeoutMs !== undefined) {
      const problem = callBudgetProblem(needs.functionTimeoutMs, Number(timeout));
      if (problem) problems.push(problem);
    }
    const caPem = get('WXPAY_CA_PEM');
    // cloudPay's callbacks are function invocations: it has no notify URL.
    const httpNotifies = uses('v2') || uses('v3');
    wxpay = {
      ...wxpay,
      appid,
      mchId,
      caPem: caPem ? pemOrBase64(caPem) : undefined,
      payNotifyUrl: httpNotifies
        ? checkNotifyUrl('WXPAY_NOTIFY_URL', get('WXPAY_NOTIFY_URL'), problems, local)
        : '',
      refundNotifyUrl: httpNotifies
        ? checkNotifyUrl('WXPAY_REFUND_NOTIFY_URL', get('WXPAY_REFUND_NOTIFY_URL'), problems, local)
        : '',
      timeoutMs: Number(timeout),
    };
    if (uses('v2')) {
      section('v2', (own) => {
        const apiKey = get('WXPAY_API_KEY') ?? '';
        if (!apiKey) own.push(`WXPAY_API_KEY is missing (${CONFIG_VARIABLES.WXPAY_API_KEY})`);
        else if (!/^[A-Za-z0-9]{32}$/.test(apiKey)) {
          own.push(
            'WXPAY_API_KEY must be exactly 32 letters and digits (the APIv2 key, not the APIv3 key or AppSecret)',
          );
        }
        registerSecret(apiKey);
        const signType = get('WXPAY_SIGN_TYPE') ?? 'MD5';
        if (!isSignType(signType)) own.push('WXPAY_SIGN_TYPE must be MD5 or HMAC-SHA256');
        const notifyTypes = (get('WXPAY_NOTIFY_SIGN_TYPES') ?? 'MD5,HMAC-SHA256')
          .split(',')
          .map((t) => t.trim())
          .filter(Boolean);
        const badType = notifyTypes.find((t) => !isSignType(t));
        if (badType !== undefined || notifyTypes.length === 0) {
          own.push('WXPAY_NOTIFY_SIGN_TYPES must list MD5 and/or HMAC-SHA256, comma-separated');
        } else if (isSignType(signType) && !notifyTypes.includes(signType)) {
          own.push(
            `WXPAY_NOTIFY_SIGN_TYPES must include WXPAY_SIGN_TYPE (${signType}), or new orders' notifies would be refused`,
          );
        }
        wxpay = {
          ...wxpay,
          apiKey,
          signType: isSignType(signType) ? signType : 'MD5',
          notifySignTypes: notifyTypes.filter(isSignType),
        };
      });
    }
    if (uses('v3')) {
      section('v3', (own) => {
        v3 = readV3(anyVar, own, {
          appid,
          mchId,
          partner,
          baseUrl,
          caPem: wxpay.caPem,
          payNotifyUrl: wxpay.payNotifyUrl,
          refundNotifyUrl: wxpay.refundNotifyUrl,
          timeoutMs: wxpay.timeoutMs,
          nowMs: Date.now(),
        });
      });
    }
    if (uses('cloudpay')) {
      section('cloudpay', (own) => {
        cloudpay = readCloudPay(anyVar, own, { mchId, timeoutMs: wxpay.timeoutMs });
      });
    }
  }

  let cert: ClientCert | undefined;
  const certPem = get('WXPAY_CERT_PEM');
  const keyPem = get('WXPAY_KEY_PEM');
  const pfx = get('WXPAY_PFX_BASE64');
  if (certPem || keyPem) {
    if (!certPem || !keyPem) problems.push('WXPAY_CERT_PEM and WXPAY_KEY_PEM must be set together');
    else {
      cert = { certPem: pemOrBase64(certPem), keyPem: pemOrBase64(keyPem) };
      if (!cert.certPem.includes('BEGIN CERTIFICATE'))
        problems.push('WXPAY_CERT_PEM is not a PEM certificate');
      if (!/BEGIN (RSA |EC )?PRIVATE KEY/.test(cert.keyPem))
        problems.push('WXPAY_KEY_PEM is not a PEM private key');
      registerSecret(cert.keyPem);
      registerSecret(keyPem);
    }
  } else if (pfx) {
    const buf = Buffer.from(pfx, 'base64');
    if (buf.length < 100) problems.push('WXPAY_PFX_BASE64 is not a base64 PKCS#12 file');
    cert = { pfx: buf, passphrase: get('WXPAY_PFX_PASSPHRASE') ?? wxpay.mchId };
    registerSecret(pfx);
  } else if (needs.cert && uses('v2')) {
    section('v2', (own) =>
      own.push(
        'the merchant certificate is missing: set WXPAY_CERT_PEM + WXPAY_KEY_PEM, or WXPAY_PFX_BASE64',
      ),
    );
  }

  // Only the kinds this function renders: a broken variable stops the functions that use it.
  const noticeEnv: Env = { NOTICE_MINIPROGRAM_STATE: env['NOTICE_MINIPROGRAM_STATE'] };
  for (const kind of noticeKindsOf(needs)) {
    const name = NOTICE_ENV[kind];
    noticeEnv[name] = env[name];
  }
  const notices = loadNoticeConfig(noticeEnv);
  problems.push(...notices.problems);

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    wxpay,
    cert,
    providers: { current, enabled, partner, v3, cloudpay },
    adminOpenids,
    notices: notices.config,
    orderExpireMs: Number(expireMin) * 60_000,
    shopName: get('SHOP_NAME') ?? '小店',
    reconcile,
    refunds,
    limits,
    timeScale,
  };
}

function loadLimits(get: (k: ConfigVariable) => string | undefined, problems: string[]): LimitsConfig {
  const count = (k: ConfigVariable, dflt: number, min: number, max: number): number => {
    const v = get(k) ?? String(dflt);
    const n = Number(v);
    if (!/^\d{1,4}$/.test(v) || n < min || n > max) {
      problems.push(`${k} must be a whole number from ${min} to ${max}`);
      return dflt;
    }
    return n;
  };
  const perMinute = {
    createOrder: count('LIMIT_CREATE_ORDER_PER_MINUTE', 20, 1, 1000),
    applyRefund: count('LIMIT_APPLY_REFUND_PER_MINUTE', 10, 1, 1000),
    reads: count('LIMIT_READS_PER_MINUTE', 120, 1, 1000),
  };
  const adminPerMinute = count('LIMIT_ADMIN_PER_MINUTE', 300, 1, 1000);
  const openOrders = count('LIMIT_OPEN_ORDERS', 10, 1, 100);
  const adminOpenOrders = count('LIMIT_ADMIN_OPEN_ORDERS', 50, 1, 100);
  const sameCartSeconds = count('LIMIT_SAME_CART_SECONDS', 30, 0, 600);
  const highest = Math.max(...Object.values(perMinute));
  if (adminPerMinute < highest) {
    problems.push(
      `LIMIT_ADMIN_PER_MINUTE (${adminPerMinute}) is below a shopper's limit (${highest}): admins' limits are meant to be higher; raise it`,
    );
  }
  if (adminOpenOrders < openOrders) {
    problems.push(
      `LIMIT_ADMIN_OPEN_ORDERS (${adminOpenOrders}) is below LIMIT_OPEN_ORDERS (${openOrders}); raise it`,
    );
  }
  return { perMinute, adminPerMinute, openOrders, adminOpenOrders, sameCartMs: sameCartSeconds * 1000 };
}
