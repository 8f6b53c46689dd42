/**
 * The deploy planner: from the built functions, their config.json, the rule files and the
 * merchant's variables, every step `npm run deploy` takes, in order, with its parameters.
 * Pure (no credentials, no network), so `--dry-run` prints exactly what the executor does
 * and tests can check it.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CONFIG_VARIABLES,
  type ConfigNeeds,
  callBudgetProblem,
  noticeKindsOf,
} from '../../cloudfunctions/shared/config';
import { COLLECTIONS } from '../../cloudfunctions/shared/domain/model';
import { NOTICE_CONFIG_VARIABLES, NOTICE_ENV } from '../../cloudfunctions/shared/notices/config';
import { NOTICE_KINDS, type NoticeKind } from '../../cloudfunctions/shared/notices/kinds';
import { pemOrBase64 } from '../../cloudfunctions/shared/providers/config';
import { PROVIDER_NAMES, type ProviderName } from '../../cloudfunctions/shared/providers/port';
import type { FunctionConfig } from '../build';
import { chooseRuntime, DEFAULT_RUNTIME, isEndOfLife, type NodeRuntime } from '../runtimes';
import { maskValue } from './envfile';

/** The region CloudBase environments default to; deploy asks the environment for its own. */
export const DEFAULT_REGION = 'ap-shanghai';

/**
 * The default domain of an environment's HTTP access service, as CloudBase documents it
 * (docs.cloudbase.net "通过 HTTP 访问云函数": `https://<env-id>.<region>.app.tcloudbase.com/<path>`).
 */
export function defaultHttpDomain(envId: string, region: string): string {
  return `${envId || '<env-id>'}.${region}.app.tcloudbase.com`;
}

/** What deploy learns from the environment before it changes anything (DescribeEnvInfo, HTTP access). */
export interface EnvironmentFacts {
  region: string;
  /** The SCF namespace (DescribeEnvInfo Functions[0].Namespace; the environment id). */
  namespace?: string;
  /** The current HTTP access service, or HTTP 访问服务（旧） when the environment lacks it. */
  httpApi: 'current' | 'legacy';
  /** The default domain the environment reports, when it reports one. */
  defaultDomain?: string;
}

/** HTTP access routes (the local gateway serves the same paths under /http). */
export const HTTP_ROUTES = [
  { path: '/pay/notify', function: 'payNotify', urlVariable: 'WXPAY_NOTIFY_URL' },
  { path: '/refund/notify', function: 'refundNotify', urlVariable: 'WXPAY_REFUND_NOTIFY_URL' },
] as const;

export interface IndexSpec {
  collection: string;
  name: string;
  keys: { field: string; direction: 1 | -1 }[];
  unique: false;
}

// The _id of orders and refunds is out_trade_no / out_refund_no, and _id is unique by
// itself, so "insert once" needs no extra unique index. These serve the listings
// (newest first) and reconcile's status scans.
export const INDEXES: IndexSpec[] = [
  {
    collection: COLLECTIONS.orders,
    name: 'openid_createdAtMs',
    keys: [
      { field: 'openid', direction: 1 },
      { field: 'createdAtMs', direction: -1 },
    ],
    unique: false,
  },
  {
    collection: COLLECTIONS.orders,
    name: 'status_createdAtMs',
    keys: [
      { field: 'status', direction: 1 },
      { field: 'createdAtMs', direction: -1 },
    ],
    unique: false,
  },
  {
    collection: COLLECTIONS.refunds,
    name: 'status_createdAtMs',
    keys: [
      { field: 'status', direction: 1 },
      { field: 'createdAtMs', direction: -1 },
    ],
    unique: false,
  },
  {
    collection: COLLECTIONS.refunds,
    name: 'orderId',
    keys: [{ field: 'orderId', direction: 1 }],
    unique: false,
  },
  {
    // reconcile: orders whose reservations are due a check for one stranded by a crash.
    collection: COLLECTIONS.orders,
    name: 'reservationCheckAtMs',
    keys: [{ field: 'reservationCheckAtMs', direction: 1 }],
    unique: false,
  },
  {
    // reconcile at scale: NOTPAY orders whose next look is due, oldest due first.
    collection: COLLECTIONS.orders,
    name: 'status_nextCheckAtMs',
    keys: [
      { field: 'status', direction: 1 },
      { field: 'nextCheckAtMs', direction: 1 },
    ],
    unique: false,
  },
  {
    // reconcile: refunds in any state whose next look is due, oldest due first.
    collection: COLLECTIONS.refunds,
    name: 'nextCheckAtMs',
    keys: [{ field: 'nextCheckAtMs', direction: 1 }],
    unique: false,
  },
  {
    // The bill check: one count (and, on a difference, one scan) of the day's PAID orders.
    collection: COLLECTIONS.orders,
    name: 'status_paidAtMs',
    keys: [
      { field: 'status', direction: 1 },
      { field: 'paidAtMs', direction: 1 },
    ],
    unique: false,
  },
  {
    // The bill check: the day's SUCCESS refunds, by when WeChat accepted them.
    collection: COLLECTIONS.refunds,
    name: 'status_submittedAtMs',
    keys: [
      { field: 'status', direction: 1 },
      { field: 'submittedAtMs', direction: 1 },
    ],
    unique: false,
  },
  {
    // The notices outbox: due sends and resends, and lapsed claims, for reconcile.
    collection: COLLECTIONS.notices,
    name: 'status_nextAttemptAtMs',
    keys: [
      { field: 'status', direction: 1 },
      { field: 'nextAttemptAtMs', direction: 1 },
    ],
    unique: false,
  },
  {
    collection: COLLECTIONS.notices,
    name: 'status_leaseUntilMs',
    keys: [
      { field: 'status', direction: 1 },
      { field: 'leaseUntilMs', direction: 1 },
    ],
    unique: false,
  },
];

/** SCF refuses a function whose environment variables exceed 4 KB (cloud.tencent.com/document/product/583/11637). */
export const ENV_LIMIT_BYTES = 4096;
export { DEFAULT_RUNTIME };

// Which variables a function receives, by what it declares it needs and which providers are
// enabled: a listing never holds a key, only the functions that refund through APIv2 hold its
// client certificate, and a provider that is not enabled gets none of its variables.
const KEY_VARIABLES = new Set([
  'WXPAY_API_KEY',
  'WXPAY_V3_KEY',
  'WXPAY_V3_PRIVATE_KEY_PEM',
  'WXPAY_V3_PUBLIC_KEY_ID',
  'WXPAY_V3_PUBLIC_KEY_PEM',
  'WXPAY_V3_PLATFORM_CERTS_PEM',
  'WXPAY_V3_CERT_SERIAL',
]);
const CERT_VARIABLES = new Set([
  'WXPAY_CERT_PEM',
  'WXPAY_KEY_PEM',
  'WXPAY_PFX_BASE64',
  'WXPAY_PFX_PASSPHRASE',
]);
/** Each provider's own variables; the shared ones (ids, URLs, timeouts) are everyone's. */
const PROVIDER_VARIABLES: Record<ProviderName, readonly string[]> = {
  v2: ['WXPAY_API_KEY', 'WXPAY_SIGN_TYPE', 'WXPAY_NOTIFY_SIGN_TYPES'],
  v3: [
    'WXPAY_V3_KEY',
    'WXPAY_V3_PRIVATE_KEY_PEM',
    'WXPAY_V3_PUBLIC_KEY_ID',
    'WXPAY_V3_PUBLIC_KEY_PEM',
    'WXPAY_V3_PLATFORM_CERTS_PEM',
    'WXPAY_V3_CERT_SERIAL',
  ],
  cloudpay: [
    'WXPAY_CLOUDPAY_ENV',
    'WXPAY_CLOUDPAY_PAY_FUNCTION',
    'WXPAY_CLOUDPAY_REFUND_FUNCTION',
    'WXPAY_CLOUDPAY_APPID',
  ],
};

/** WXPAY_PROVIDER (default v2) and WXPAY_KEEP_PROVIDERS, as loadConfig reads them. */
export function enabledProviders(vars: Record<string, string>): ProviderName[] {
  const current = (vars['WXPAY_PROVIDER'] || 'v2').toLowerCase();
  const all = [current, ...(vars['WXPAY_KEEP_PROVIDERS'] ?? '').split(',')]
    .map((p) => p.trim().toLowerCase())
    .filter((p): p is ProviderName => (PROVIDER_NAMES as readonly string[]).includes(p));
  return [...new Set(all)];
}

/** The functions cloudPay calls back (WXPAY_CLOUDPAY_*_FUNCTION; default payNotify, refundNotify). */
export function cloudPayCallbacks(vars: Record<string, string>): string[] {
  if (!enabledProviders(vars).includes('cloudpay')) return [];
  return [
    ...new Set([
      vars['WXPAY_CLOUDPAY_PAY_FUNCTION'] || 'payNotify',
      vars['WXPAY_CLOUDPAY_REFUND_FUNCTION'] || 'refundNotify',
    ]),
  ];
}

/** The serial of a PEM certificate (WXPAY_V3_CERT_SERIAL), or undefined when it is not one. */
function serialOf(pem: string | undefined): string | undefined {
  if (!pem) return undefined;
  try {
    return new X509Certificate(pemOrBase64(pem)).serialNumber.toUpperCase();
  } catch {
    return undefined;
  }
}

export interface BuiltFunction {
  name: string;
  /** dist/cloudfunctions/<name> */
  dir: string;
  files: string[];
  config: FunctionConfig;
  dependencies: Record<string, string>;
  /** wx-server-sdk bundled into index.js, or left for the cloud install (package.json's sdkBuild). */
  sdkBuild: { sdk: 'bundled' | 'external'; wxServerSdk: string } | undefined;
  /** Parsed from cloudfunctions/<name>/index.ts; undefined if it could not be read. */
  needs: ConfigNeeds | undefined;
  /** sha256 of the built files (names and contents): a second deploy skips unchanged code. */
  codeHash: string;
}

export type Step =
  | {
      kind: 'function.upload';
      function: string;
      dir: string;
      files: string[];
      dependencies: Record<string, string>;
      /** The wx-server-sdk version inside index.js, when it is bundled. */
      bundledSdk: string | undefined;
      runtime: string;
      handler: 'index.main';
      /** 云端安装依赖: only when package.json lists dependencies (an SDK bundled in needs none). */
      installDependency: boolean;
      codeHash: string;
    }
  | {
      kind: 'function.config';
      function: string;
      timeout: number;
      envVariables: Record<string, string>;
      envBytes: number;
    }
  | { kind: 'function.trigger'; function: string; trigger: { name: string; type: 'timer'; config: string } }
  | { kind: 'database.collection'; collection: string }
  | { kind: 'database.index'; index: IndexSpec }
  | {
      kind: 'access.route';
      path: string;
      function: string;
      auth: false;
      /** The domain the route is on (the current HTTP access service routes per domain). */
      domain: string;
      api: 'current' | 'legacy';
    }
  | { kind: 'rules.database'; collection: string; rule: unknown }
  | { kind: 'rules.functions'; rule: Record<string, { invoke: unknown }> };

export interface Plan {
  envId: string;
  region: string;
  /** Where the region came from: CLOUDBASE_REGION, the default, or the environment itself. */
  regionSource: 'CLOUDBASE_REGION' | 'default' | 'environment';
  namespace: string;
  /** The runtime new functions are created with (CLOUDBASE_FUNCTION_RUNTIME or the default). */
  runtime: string;
  httpApi: 'current' | 'legacy';
  /** The HTTP access domain the notify routes and URLs use. */
  httpDomain: string;
  steps: Step[];
  /** The URLs set on the functions as WXPAY_NOTIFY_URL / WXPAY_REFUND_NOTIFY_URL. */
  notifyUrls: {
    path: string;
    function: string;
    variable: string;
    url: string;
    /** Set in the configuration, or derived from the environment id and the HTTP access domain. */
    source: 'configured' | 'derived';
  }[];
  /** Not refused, but worth reading: an end-of-life runtime, the default domain in production… */
  warnings: string[];
  /** What deploy cannot do through the Tencent Cloud API: the merchant does it in the console. */
  manualSteps: string[];
  problems: string[];
}

export interface Rules {
  database: Record<string, unknown>;
  functions: Record<string, { invoke: unknown }>;
}

/**
 * Reads `callableFunction('x', { wxpay: true, notices: ['order_paid'] }, ...)` & co. from the
 * function's entry file: booleans, and `notices` as a list of kinds or 'all'.
 */
export function parseNeeds(source: string): ConfigNeeds | undefined {
  const m = /(?:callable|notify|timer)Function\(\s*['"][^'"]+['"]\s*,\s*\{((?:[^{}[\]]|\[[^\]]*\])*)\}/.exec(
    source,
  );
  if (!m) return undefined;
  const needs: ConfigNeeds = {};
  for (const part of m[1]!.split(/,(?![^[]*\])/)) {
    const kv = /^\s*(appid|wxpay|cert|calls)\s*:\s*(true|false)\s*$/.exec(part);
    const notices = /^\s*notices\s*:\s*(?:'all'|"all"|\[([^\]]*)\])\s*$/.exec(part);
    if (kv) needs[kv[1] as 'appid' | 'wxpay' | 'cert' | 'calls'] = kv[2] === 'true';
    else if (notices && notices[1] === undefined) needs.notices = 'all';
    else if (notices) {
      const kinds = notices[1]!
        .split(',')
        .map((k) => k.trim().replace(/^['"]|['"]$/g, ''))
        .filter(Boolean);
      if (!kinds.every((k) => (NOTICE_KINDS as readonly string[]).includes(k))) return undefined;
      needs.notices = kinds as NoticeKind[];
    } else if (part.trim() !== '') return undefined;
  }
  return needs;
}

export function loadBuiltFunctions(distDir: string, srcDir: string): BuiltFunction[] {
  return readdirSync(distDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(distDir, d.name, 'index.js')))
    .map((d) => {
      const dir = join(distDir, d.name);
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      const cfgPath = join(dir, 'config.json');
      const srcPath = join(srcDir, d.name, 'index.ts');
      const files = readdirSync(dir).sort();
      const hash = createHash('sha256');
      for (const f of files)
        hash
          .update(`${f}\0`)
          .update(readFileSync(join(dir, f)))
          .update('\0');
      return {
        name: d.name,
        dir,
        files,
        config: existsSync(cfgPath) ? (JSON.parse(readFileSync(cfgPath, 'utf8')) as FunctionConfig) : {},
        dependencies: pkg.dependencies ?? {},
        sdkBuild: pkg.sdkBuild,
        needs: existsSync(srcPath) ? parseNeeds(readFileSync(srcPath, 'utf8')) : undefined,
        codeHash: hash.digest('hex').slice(0, 16),
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

export function loadRules(dir: string): Rules {
  return {
    database: JSON.parse(readFileSync(join(dir, 'database-rules.json'), 'utf8')),
    functions: JSON.parse(readFileSync(join(dir, 'function-rules.json'), 'utf8')),
  };
}

/** Bytes of a function's variables that are notice templates. */
function noticeBytes(vars: Record<string, string>): number {
  return envBytes(Object.fromEntries(Object.entries(vars).filter(([k]) => k in NOTICE_CONFIG_VARIABLES)));
}

/** Bytes SCF counts for a function's variables: every key and value. */
export function envBytes(vars: Record<string, string>): number {
  return Object.entries(vars).reduce(
    (n, [k, v]) => n + Buffer.byteLength(k, 'utf8') + Buffer.byteLength(v, 'utf8'),
    0,
  );
}

/**
 * The variables a function gets. PEM values are stored on one line with `\n` escapes (loadConfig
 * turns them back), so they survive any console or API that trims multi-line values.
 */
export function functionEnvironment(
  needs: ConfigNeeds | undefined,
  vars: Record<string, string>,
): Record<string, string> {
  // Unknown needs: give everything rather than a function that cannot start.
  const n: ConfigNeeds = needs ?? { wxpay: true, cert: true, notices: 'all' };
  // Only the templates it renders: SCF's 4 KB must hold the certificate too.
  const notices = new Set<string>(noticeKindsOf(n).map((k) => NOTICE_ENV[k]));
  if (n.notices !== undefined) notices.add('NOTICE_MINIPROGRAM_STATE');
  const enabled = enabledProviders(vars);
  const disabled = new Set(
    PROVIDER_NAMES.filter((p) => !enabled.includes(p)).flatMap((p) => PROVIDER_VARIABLES[p]),
  );
  const payments = n.wxpay || n.cert;
  // APIv2's client certificate goes only where APIv2 refunds are made.
  const clientCert = Boolean(n.cert) && enabled.includes('v2');
  const one = (v: string) => (v.includes('-----BEGIN') ? v.replace(/\r?\n/g, '\\n') : v);
  const out: Record<string, string> = {};
  for (const k of Object.keys(CONFIG_VARIABLES)) {
    const v = vars[k];
    if (v === undefined || v === '') continue;
    if (disabled.has(k)) continue;
    if (KEY_VARIABLES.has(k) && !payments) continue;
    if (CERT_VARIABLES.has(k) && !clientCert) continue;
    if (k in NOTICE_CONFIG_VARIABLES && !notices.has(k)) continue;
    out[k] = one(v);
  }
  if (payments && enabled.includes('v3')) {
    // APIv3 signs every request with the API certificate's key, and names the certificate by
    // its serial. Without the client certificate on this function, the key travels as
    // WXPAY_V3_PRIVATE_KEY_PEM and the serial as text (the certificate itself is 1.5 KB of
    // SCF's 4 KB); with it, APIv3 reads both from the pair.
    const key = vars['WXPAY_V3_PRIVATE_KEY_PEM'] || vars['WXPAY_KEY_PEM'];
    if (!out['WXPAY_KEY_PEM'] && key) out['WXPAY_V3_PRIVATE_KEY_PEM'] = one(key);
    if (out['WXPAY_V3_PRIVATE_KEY_PEM'] && out['WXPAY_V3_PRIVATE_KEY_PEM'] === out['WXPAY_KEY_PEM'])
      delete out['WXPAY_V3_PRIVATE_KEY_PEM'];
    const serial = vars['WXPAY_V3_CERT_SERIAL'] || serialOf(vars['WXPAY_CERT_PEM']);
    if (!out['WXPAY_CERT_PEM'] && serial) out['WXPAY_V3_CERT_SERIAL'] = serial;
  }
  return out;
}

/** The path a notify URL must end with, or undefined when the value is not a URL. */
function pathOf(url: string): string | undefined {
  try {
    return new URL(url).pathname;
  } catch {
    return undefined;
  }
}

/**
 * Where the notify URLs point and the variables the functions get, before anything is
 * deployed: an unset WXPAY_NOTIFY_URL / WXPAY_REFUND_NOTIFY_URL is derived from the HTTP
 * access domain (CLOUDBASE_HTTP_DOMAIN, else the environment's default domain), so the first
 * deploy needs no URL that only exists after it.
 */
export function notifyTargets(
  vars: Record<string, string>,
  facts: { envId: string; region: string; defaultDomain?: string; httpApi?: 'current' | 'legacy' },
): { domain: string; urls: Plan['notifyUrls']; vars: Record<string, string> } {
  // HTTP 访问服务（旧） documents `<env-id>.service.tcloudbase.com` as its default domain.
  const documented =
    facts.httpApi === 'legacy'
      ? `${facts.envId || '<env-id>'}.service.tcloudbase.com`
      : defaultHttpDomain(facts.envId, facts.region);
  const domain = vars['CLOUDBASE_HTTP_DOMAIN'] || facts.defaultDomain || documented;
  const effective = { ...vars };
  // cloudPay calls back functions of this environment unless told otherwise.
  if (enabledProviders(vars).includes('cloudpay') && !vars['WXPAY_CLOUDPAY_ENV'] && facts.envId)
    effective['WXPAY_CLOUDPAY_ENV'] = facts.envId;
  const urls = HTTP_ROUTES.map((r) => {
    const configured = vars[r.urlVariable];
    const url = configured || `https://${domain}${r.path}`;
    if (!configured) effective[r.urlVariable] = url;
    return {
      path: r.path,
      function: r.function,
      variable: r.urlVariable,
      url,
      source: configured ? ('configured' as const) : ('derived' as const),
    };
  });
  return { domain, urls, vars: effective };
}

export function planDeployment(input: {
  functions: BuiltFunction[];
  vars: Record<string, string>;
  rules: Rules;
  sdkVersion: string;
  /** What the environment said about itself; before deploy asks, the configuration's view. */
  facts?: EnvironmentFacts;
  now?: number;
}): Plan {
  const { functions, vars, rules, facts } = input;
  const problems: string[] = [];
  const warnings: string[] = [];
  const manualSteps: string[] = [];
  const envId = vars['CLOUDBASE_ENV_ID'] ?? '';
  if (!envId) problems.push('CLOUDBASE_ENV_ID is missing (the cloud environment to deploy to)');

  const chosen = chooseRuntime(vars['CLOUDBASE_FUNCTION_RUNTIME']);
  let runtime: NodeRuntime | undefined;
  if ('problem' in chosen) problems.push(chosen.problem);
  else {
    runtime = chosen.runtime;
    if (isEndOfLife(runtime, new Date(input.now ?? Date.now()))) {
      warnings.push(
        `runtime ${runtime.name}: Node.js ${runtime.major} is end-of-life since ${runtime.endOfLife} (no security fixes); choose ${DEFAULT_RUNTIME}`,
      );
    }
  }
  const runtimeName = runtime?.name ?? vars['CLOUDBASE_FUNCTION_RUNTIME'] ?? DEFAULT_RUNTIME;

  const configuredRegion = vars['CLOUDBASE_REGION'];
  const region = facts?.region ?? configuredRegion ?? DEFAULT_REGION;
  const regionSource: Plan['regionSource'] = facts
    ? 'environment'
    : configuredRegion
      ? 'CLOUDBASE_REGION'
      : 'default';
  if (facts && configuredRegion && configuredRegion !== facts.region) {
    problems.push(`CLOUDBASE_REGION is ${configuredRegion}, but environment ${envId} is in ${facts.region}`);
  }
  const httpApi = facts?.httpApi ?? 'current';
  const targets = notifyTargets(vars, {
    envId,
    region,
    httpApi,
    ...(facts?.defaultDomain ? { defaultDomain: facts.defaultDomain } : {}),
  });
  const domain = targets.domain;
  const fnVars = targets.vars;

  const base = vars['WXPAY_BASE_URL'];
  if (base && /^https?:\/\/(127\.0\.0\.1|localhost)[:/]/.test(`${base}/`)) {
    problems.push(`WXPAY_BASE_URL is ${base}, the local simulator; remove it to use WeChat Pay`);
  }
  const steps: Step[] = [];
  const names = new Set(functions.map((f) => f.name));
  const cloudInstalls: string[] = [];

  for (const fn of functions) {
    const sdk =
      fn.dependencies['wx-server-sdk'] ??
      (fn.sdkBuild?.sdk === 'bundled' ? fn.sdkBuild.wxServerSdk : undefined);
    if (sdk === undefined) {
      problems.push(
        `${fn.name}: package.json neither bundles nor installs wx-server-sdk (run npm run build)`,
      );
    } else if (sdk !== input.sdkVersion) {
      problems.push(
        `${fn.name}: package.json must pin wx-server-sdk ${input.sdkVersion}, has ${sdk} (run npm run build)`,
      );
    }
    if (!fn.needs)
      problems.push(`${fn.name}: cannot read its ConfigNeeds from index.ts; it gets every variable`);
    // config.json may name a runtime (DevTools' own field); it must be the one deployed.
    const declared = (fn.config as { runtime?: unknown }).runtime;
    if (declared !== undefined && declared !== runtimeName) {
      problems.push(
        `${fn.name}/config.json names runtime ${String(declared)}, but the functions are deployed on ${runtimeName} (CLOUDBASE_FUNCTION_RUNTIME)`,
      );
    }
    const timeout = fn.config.timeout ?? 3;
    if (!(Number.isInteger(timeout) && timeout >= 1 && timeout <= 300)) {
      problems.push(`${fn.name}/config.json: timeout ${timeout} is not 1 to 300 seconds`);
    } else if (fn.needs?.calls) {
      // A WeChat Pay call that cannot end before the platform kills the function loses its answer.
      const problem = callBudgetProblem(timeout * 1000, Number(fnVars['WXPAY_TIMEOUT_MS'] ?? 8000));
      if (problem) problems.push(`${fn.name}: ${problem}`);
    }
    const openapi = fn.config.permissions?.openapi ?? [];
    if (openapi.length > 0) {
      manualSteps.push(
        `${fn.name} declares permissions.openapi [${openapi.join(', ')}] in config.json. The Tencent Cloud API (and manager-node) cannot set it: in WeChat DevTools open this project, right-click cloudfunctions/${fn.name} (dist/cloudfunctions/${fn.name}) → 上传并部署：云端安装依赖, once after the first deploy and after every change of that list; CloudBase takes up to 10 minutes to apply it (-604101 until then)`,
      );
    }
    const envVariables = functionEnvironment(fn.needs, fnVars);
    const bytes = envBytes(envVariables);
    if (bytes > ENV_LIMIT_BYTES) {
      problems.push(
        `${fn.name}: its environment variables take ${bytes} bytes, over SCF's ${ENV_LIMIT_BYTES}: use the PEM pair (not base64, not the .p12), a shorter ADMIN_OPENIDS${noticeBytes(envVariables) > 0 ? `, or templates with fewer fields for its notices (${noticeBytes(envVariables)} bytes of NOTICE_* variables)` : ''}`,
      );
    }
    const installDependency = Object.keys(fn.dependencies).length > 0;
    if (installDependency) cloudInstalls.push(fn.name);
    // CloudBase's default timeout is 3 s, too short for a WeChat Pay round trip with retries.
    steps.push({ kind: 'function.config', function: fn.name, timeout, envVariables, envBytes: bytes });
    // Configuration first: the executor applies it before new code replaces old code.
    steps.push({
      kind: 'function.upload',
      function: fn.name,
      dir: fn.dir,
      files: fn.files,
      dependencies: fn.dependencies,
      bundledSdk: fn.sdkBuild?.sdk === 'bundled' ? fn.sdkBuild.wxServerSdk : undefined,
      runtime: runtimeName,
      handler: 'index.main',
      installDependency,
      codeHash: fn.codeHash,
    });
    for (const t of fn.config.triggers ?? []) {
      steps.push({ kind: 'function.trigger', function: fn.name, trigger: t });
    }
  }

  if (cloudInstalls.length > 0 && runtime && runtime.onlineInstall !== 'yes') {
    warnings.push(
      `${cloudInstalls.join(', ')} install their dependencies in the cloud (云端安装依赖), which public deploy records report missing on ${runtime.name}; a failed install stops the deploy and says so: bundle the SDK or choose Nodejs20.19`,
    );
  }
  for (const collection of Object.values(COLLECTIONS))
    steps.push({ kind: 'database.collection', collection });
  for (const index of INDEXES) steps.push({ kind: 'database.index', index });

  // Authentication off: WeChat Pay cannot log in; the handlers verify the sign or req_info.
  for (const r of HTTP_ROUTES) {
    if (!names.has(r.function)) problems.push(`HTTP route ${r.path}: function ${r.function} is not built`);
    steps.push({
      kind: 'access.route',
      path: r.path,
      function: r.function,
      auth: false,
      domain,
      api: httpApi,
    });
  }

  for (const collection of Object.values(COLLECTIONS)) {
    const rule = rules.database[collection];
    if (rule === undefined) problems.push(`deploy/database-rules.json has no rule for ${collection}`);
    else steps.push({ kind: 'rules.database', collection, rule });
  }
  for (const extra of Object.keys(rules.database)) {
    if (!(Object.values(COLLECTIONS) as string[]).includes(extra))
      problems.push(`deploy/database-rules.json names ${extra}, which is not a collection`);
  }

  // cloudPay calls back a function by name: it must be one of the notify functions (they
  // answer {errcode: 0} and confirm every callback with a query).
  const callbacks = cloudPayCallbacks(vars);
  for (const fn of callbacks) {
    if (!HTTP_ROUTES.some((r) => r.function === fn)) {
      problems.push(
        `WXPAY_CLOUDPAY_PAY_FUNCTION / WXPAY_CLOUDPAY_REFUND_FUNCTION name ${fn}: cloudPay's callbacks must go to payNotify or refundNotify`,
      );
    } else if (!names.has(fn)) problems.push(`cloudPay callback function ${fn} is not built`);
  }
  if (callbacks.length > 0) {
    manualSteps.push(
      `cloudPay: bind merchant ${vars['WXPAY_MCHID'] || '(WXPAY_MCHID)'} to environment ${envId || '(CLOUDBASE_ENV_ID)'} in the CloudBase console (设置 → 全局设置 → 添加商户号), have its super-admin confirm in 微信支付商家助手, and authorise JSAPI and refunds (商户平台 → 我的授权产品); its callbacks invoke ${callbacks.join(' and ')}, which refuse calls from the mini-program`,
    );
  }

  // Functions reached by HTTP access, a timer or cloudPay's callbacks must not be callable
  // from the mini-program: a client could otherwise fake a notify event or run reconcile.
  const internal = [
    ...HTTP_ROUTES.map((r) => r.function),
    ...callbacks,
    ...functions.filter((f) => (f.config.triggers ?? []).length > 0).map((f) => f.name),
  ];
  for (const fn of internal) {
    if (rules.functions[fn]?.invoke !== false)
      problems.push(`deploy/function-rules.json must set "${fn}": { "invoke": false }`);
  }
  steps.push({ kind: 'rules.functions', rule: rules.functions });

  for (const n of targets.urls) {
    if (n.source !== 'configured') continue;
    const path = pathOf(n.url);
    const host = (() => {
      try {
        return new URL(n.url).hostname;
      } catch {
        return undefined;
      }
    })();
    if (path !== n.path) {
      problems.push(`${n.variable} must end with the route path ${n.path}, is ${n.url}`);
    } else if (host !== domain) {
      problems.push(
        `${n.variable} is ${n.url}, but the route will be https://${domain}${n.path}: remove it (deploy derives it) or set CLOUDBASE_HTTP_DOMAIN`,
      );
    }
  }
  if (!vars['CLOUDBASE_HTTP_DOMAIN']) {
    warnings.push(
      `the notify URLs use the default domain ${domain}, which CloudBase rate-limits and means for testing; before taking real payments bind an ICP-filed (备案) custom domain (HTTP 访问服务 → 域名管理) and set CLOUDBASE_HTTP_DOMAIN`,
    );
  }
  return {
    envId,
    region,
    regionSource,
    namespace: facts?.namespace ?? envId,
    runtime: runtimeName,
    httpApi,
    httpDomain: domain,
    steps,
    notifyUrls: targets.urls,
    warnings,
    manualSteps,
    problems,
  };
}

/** The plan with every secret replaced by its length: what --dry-run and --json print. */
export function maskedPlan(plan: Plan): Plan {
  return {
    ...plan,
    steps: plan.steps.map((s) =>
      s.kind === 'function.config'
        ? {
            ...s,
            envVariables: Object.fromEntries(
              Object.entries(s.envVariables).map(([k, v]) => [k, maskValue(k, v)]),
            ),
          }
        : s,
    ),
  };
}

export function describeStep(s: Step): string {
  switch (s.kind) {
    case 'function.upload': {
      const deps = Object.entries(s.dependencies).map(([k, v]) => `${k}@${v}`);
      const install = s.installDependency
        ? `${deps.join(', ')} installed in the cloud`
        : s.bundledSdk
          ? `wx-server-sdk ${s.bundledSdk} bundled in index.js, nothing installed`
          : 'no cloud install';
      return `upload ${s.function} (${s.files.join(', ')}; ${install}; runtime ${s.runtime} if new, handler ${s.handler}; build ${s.codeHash}, skipped when the deployed code is the same build)`;
    }
    case 'function.config':
      return `configure ${s.function}: timeout ${s.timeout}s, ${Object.keys(s.envVariables).length} variables (${s.envBytes} bytes)${Object.entries(
        s.envVariables,
      )
        .map(([k, v]) => `\n      ${k}=${v}`)
        .join('')}`;
    case 'function.trigger':
      return `timer trigger ${s.trigger.name} on ${s.function}: "${s.trigger.config}" (sec min hour day month weekday year, UTC+8)`;
    case 'database.collection':
      return `collection ${s.collection} (create if missing)`;
    case 'database.index':
      return `index ${s.index.collection}.${s.index.name} on ${s.index.keys
        .map((k) => `${k.field} ${k.direction === 1 ? 'asc' : 'desc'}`)
        .join(', ')} (not unique)`;
    case 'access.route':
      return `HTTP access https://${s.domain}${s.path} → ${s.function} (authentication off${s.api === 'legacy' ? '; HTTP 访问服务（旧）' : ''})`;
    case 'rules.database':
      return `database rule for ${s.collection}: ${JSON.stringify(s.rule)}`;
    case 'rules.functions':
      return `function invoke rules: ${JSON.stringify(s.rule)}`;
  }
}

/** The plan as text; call it with a masked plan. */
export function renderPlan(plan: Plan): string {
  const regionNote =
    plan.regionSource === 'environment'
      ? 'as the environment reports'
      : plan.regionSource === 'CLOUDBASE_REGION'
        ? 'CLOUDBASE_REGION; checked against the environment before deploying'
        : 'default; deploy asks the environment for its region first';
  const lines = [
    `Deploy plan for environment ${plan.envId || '<CLOUDBASE_ENV_ID missing>'}`,
    `  region ${plan.region} (${regionNote})`,
    `  runtime ${plan.runtime} for new functions (CLOUDBASE_FUNCTION_RUNTIME; existing functions keep theirs)`,
    `  HTTP access ${plan.httpApi === 'current' ? 'HTTP 访问服务' : 'HTTP 访问服务（旧）'} on ${plan.httpDomain}`,
  ];
  plan.steps.forEach((s, i) => {
    lines.push(`${String(i + 1).padStart(3)}. [${s.kind}] ${describeStep(s)}`);
  });
  lines.push('', 'Notify URLs (set on the functions; WeChat Pay gets them with every order and refund):');
  for (const n of plan.notifyUrls)
    lines.push(
      `  ${n.variable}=${n.url}${n.source === 'derived' ? '   (derived from the environment id)' : ''}`,
    );
  if (plan.manualSteps.length > 0) {
    lines.push('', 'Not possible through the API (do it in WeChat DevTools or the console):');
    for (const m of plan.manualSteps) lines.push(`  → ${m}`);
  }
  if (plan.warnings.length > 0) {
    lines.push('', 'Warnings:');
    for (const w of plan.warnings) lines.push(`  ! ${w}`);
  }
  if (plan.problems.length > 0) {
    lines.push('', 'Problems (deploy refuses to run until they are fixed):');
    for (const p of plan.problems) lines.push(`  ✖ ${p}`);
  }
  return lines.join('\n');
}
