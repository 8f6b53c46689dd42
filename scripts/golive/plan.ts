/**
 * The deploy planner: from the built functions, their config.json, the rule files and the
 * merchant's variables, every step `npm run deploy` takes, in order, with its parameters.
 * Pure (no credentials, no network), so `--dry-run` prints exactly what the executor does
 * and tests can check it.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_VARIABLES, type ConfigNeeds } from '../../cloudfunctions/shared/config';
import { COLLECTIONS } from '../../cloudfunctions/shared/domain/model';
import type { FunctionConfig } from '../build';
import { maskValue } from './envfile';

/** HTTP access routes (DESIGN.md §7 uses the same paths under /http locally). */
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
    // reconcile's scans: APPROVED refunds whose lease ran out, PROCESSING ones to query.
    collection: COLLECTIONS.refunds,
    name: 'status_updatedAtMs',
    keys: [
      { field: 'status', direction: 1 },
      { field: 'updatedAtMs', direction: 1 },
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
    // reconcile's scan of stranded reservations: PAID orders by last change.
    collection: COLLECTIONS.orders,
    name: 'status_updatedAtMs',
    keys: [
      { field: 'status', direction: 1 },
      { field: 'updatedAtMs', direction: 1 },
    ],
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
    // reconcile at scale: APPROVED and PROCESSING refunds whose next look is due.
    collection: COLLECTIONS.refunds,
    name: 'status_nextCheckAtMs',
    keys: [
      { field: 'status', direction: 1 },
      { field: 'nextCheckAtMs', direction: 1 },
    ],
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
];

/** SCF refuses a function whose environment variables exceed 4 KB (cloud.tencent.com/document/product/583/11637). */
export const ENV_LIMIT_BYTES = 4096;
export const DEFAULT_RUNTIME = 'Nodejs16.13';

// Which variables a function receives, by what it declares it needs: a listing never holds
// the API key, and only the functions that refund hold the client certificate.
const KEY_VARIABLES = new Set(['WXPAY_API_KEY']);
const CERT_VARIABLES = new Set([
  'WXPAY_CERT_PEM',
  'WXPAY_KEY_PEM',
  'WXPAY_PFX_BASE64',
  'WXPAY_PFX_PASSPHRASE',
]);

export interface BuiltFunction {
  name: string;
  /** dist/cloudfunctions/<name> */
  dir: string;
  files: string[];
  config: FunctionConfig;
  dependencies: Record<string, string>;
  /** Parsed from cloudfunctions/<name>/index.ts; undefined if it could not be read. */
  needs: ConfigNeeds | undefined;
}

export type Step =
  | {
      kind: 'function.upload';
      function: string;
      dir: string;
      files: string[];
      dependencies: Record<string, string>;
      runtime: string;
      handler: 'index.main';
      installDependency: true;
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
  | { kind: 'access.route'; path: string; function: string; auth: false }
  | { kind: 'rules.database'; collection: string; rule: unknown }
  | { kind: 'rules.functions'; rule: Record<string, { invoke: unknown }> };

export interface Plan {
  envId: string;
  region: string;
  steps: Step[];
  /** What to enter in the merchant platform and in WXPAY_NOTIFY_URL / WXPAY_REFUND_NOTIFY_URL. */
  notifyUrls: { path: string; function: string; variable: string; url: string }[];
  problems: string[];
}

export interface Rules {
  database: Record<string, unknown>;
  functions: Record<string, { invoke: unknown }>;
}

/** Reads `callableFunction('x', { wxpay: true }, ...)` & co. from the function's entry file. */
export function parseNeeds(source: string): ConfigNeeds | undefined {
  const m = /(?:callable|notify|timer)Function\(\s*['"][^'"]+['"]\s*,\s*\{([^}]*)\}/.exec(source);
  if (!m) return undefined;
  const needs: ConfigNeeds = {};
  for (const part of m[1]!.split(',')) {
    const kv = /^\s*(wxpay|cert)\s*:\s*(true|false)\s*$/.exec(part);
    if (kv) needs[kv[1] as 'wxpay' | 'cert'] = kv[2] === 'true';
    else if (part.trim() !== '') return undefined;
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
      return {
        name: d.name,
        dir,
        files: readdirSync(dir).sort(),
        config: existsSync(cfgPath) ? (JSON.parse(readFileSync(cfgPath, 'utf8')) as FunctionConfig) : {},
        dependencies: pkg.dependencies ?? {},
        needs: existsSync(srcPath) ? parseNeeds(readFileSync(srcPath, 'utf8')) : undefined,
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
  const n = needs ?? { wxpay: true, cert: true };
  const out: Record<string, string> = {};
  for (const k of Object.keys(CONFIG_VARIABLES)) {
    const v = vars[k];
    if (v === undefined || v === '') continue;
    if (KEY_VARIABLES.has(k) && !(n.wxpay || n.cert)) continue;
    if (CERT_VARIABLES.has(k) && !n.cert) continue;
    out[k] = v.includes('-----BEGIN') ? v.replace(/\r?\n/g, '\\n') : v;
  }
  return out;
}

function notifyUrl(domain: string | undefined, envId: string, path: string): string {
  // The older default domain; the console shows the one to use (docs/GOING_LIVE.md §3).
  return `https://${domain ?? `${envId || '<env-id>'}.service.tcloudbase.com`}${path}`;
}

export function planDeployment(input: {
  functions: BuiltFunction[];
  vars: Record<string, string>;
  rules: Rules;
  sdkVersion: string;
}): Plan {
  const { functions, vars, rules } = input;
  const problems: string[] = [];
  const envId = vars['CLOUDBASE_ENV_ID'] ?? '';
  if (!envId) problems.push('CLOUDBASE_ENV_ID is missing (the cloud environment to deploy to)');
  const runtime = vars['CLOUDBASE_FUNCTION_RUNTIME'] ?? DEFAULT_RUNTIME;
  const domain = vars['CLOUDBASE_HTTP_DOMAIN'];
  const base = vars['WXPAY_BASE_URL'];
  if (base && /^https?:\/\/(127\.0\.0\.1|localhost)[:/]/.test(`${base}/`)) {
    problems.push(`WXPAY_BASE_URL is ${base}, the local simulator; remove it to use WeChat Pay`);
  }
  const steps: Step[] = [];
  const names = new Set(functions.map((f) => f.name));

  for (const fn of functions) {
    if (fn.dependencies['wx-server-sdk'] !== input.sdkVersion) {
      problems.push(
        `${fn.name}: package.json must pin wx-server-sdk ${input.sdkVersion}, has ${fn.dependencies['wx-server-sdk'] ?? 'none'} (run npm run build)`,
      );
    }
    if (!fn.needs)
      problems.push(`${fn.name}: cannot read its ConfigNeeds from index.ts; it gets every variable`);
    const envVariables = functionEnvironment(fn.needs, vars);
    const bytes = envBytes(envVariables);
    if (bytes > ENV_LIMIT_BYTES) {
      problems.push(
        `${fn.name}: its environment variables take ${bytes} bytes, over SCF's ${ENV_LIMIT_BYTES}: use the PEM pair (not base64, not the .p12) and a shorter ADMIN_OPENIDS`,
      );
    }
    // CloudBase's default timeout is 3 s, too short for a WeChat Pay round trip with retries.
    steps.push({
      kind: 'function.config',
      function: fn.name,
      timeout: fn.config.timeout ?? 3,
      envVariables,
      envBytes: bytes,
    });
    // Configuration first: the executor applies it before new code replaces old code.
    steps.push({
      kind: 'function.upload',
      function: fn.name,
      dir: fn.dir,
      files: fn.files,
      dependencies: fn.dependencies,
      runtime,
      handler: 'index.main',
      installDependency: true,
    });
    for (const t of fn.config.triggers ?? []) {
      steps.push({ kind: 'function.trigger', function: fn.name, trigger: t });
    }
  }

  for (const collection of Object.values(COLLECTIONS))
    steps.push({ kind: 'database.collection', collection });
  for (const index of INDEXES) steps.push({ kind: 'database.index', index });

  // Authentication off: WeChat Pay cannot log in; the handlers verify the sign or req_info.
  for (const r of HTTP_ROUTES) {
    if (!names.has(r.function)) problems.push(`HTTP route ${r.path}: function ${r.function} is not built`);
    steps.push({ kind: 'access.route', path: r.path, function: r.function, auth: false });
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

  // Functions reached by HTTP access or a timer must not be callable from the mini-program:
  // a client could otherwise fake a notify event or run reconcile at will.
  const internal = [
    ...HTTP_ROUTES.map((r) => r.function),
    ...functions.filter((f) => (f.config.triggers ?? []).length > 0).map((f) => f.name),
  ];
  for (const fn of internal) {
    if (rules.functions[fn]?.invoke !== false)
      problems.push(`deploy/function-rules.json must set "${fn}": { "invoke": false }`);
  }
  steps.push({ kind: 'rules.functions', rule: rules.functions });

  const notifyUrls = HTTP_ROUTES.map((r) => ({
    path: r.path,
    function: r.function,
    variable: r.urlVariable,
    url: notifyUrl(domain, envId, r.path),
  }));
  for (const n of notifyUrls) {
    const configured = vars[n.variable];
    let configuredPath: string | undefined;
    try {
      configuredPath = configured ? new URL(configured).pathname : undefined;
    } catch {
      configuredPath = undefined;
    }
    if (configured && configuredPath !== n.path) {
      problems.push(`${n.variable} must end with the route path ${n.path}, is ${configured}`);
    } else if (configured && domain && configured !== n.url) {
      problems.push(`${n.variable} is ${configured}, but the route will be ${n.url}`);
    }
  }
  return { envId, region: vars['CLOUDBASE_REGION'] ?? 'ap-shanghai', steps, notifyUrls, problems };
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
    case 'function.upload':
      return `upload ${s.function} (${s.files.join(', ')}; ${Object.entries(s.dependencies)
        .map(([k, v]) => `${k}@${v}`)
        .join(', ')} installed in the cloud; runtime ${s.runtime} if new, handler ${s.handler})`;
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
      return `HTTP access ${s.path} → ${s.function} (authentication off)`;
    case 'rules.database':
      return `database rule for ${s.collection}: ${JSON.stringify(s.rule)}`;
    case 'rules.functions':
      return `function invoke rules: ${JSON.stringify(s.rule)}`;
  }
}

/** The plan as text; call it with a masked plan. */
export function renderPlan(plan: Plan): string {
  const lines = [
    `Deploy plan for environment ${plan.envId || '<CLOUDBASE_ENV_ID missing>'} (${plan.region})`,
  ];
  plan.steps.forEach((s, i) => {
    lines.push(`${String(i + 1).padStart(3)}. [${s.kind}] ${describeStep(s)}`);
  });
  lines.push('', 'Notify URLs (merchant platform and the variables):');
  for (const n of plan.notifyUrls) lines.push(`  ${n.variable}=${n.url}`);
  if (plan.problems.length > 0) {
    lines.push('', 'Problems (deploy refuses to run until they are fixed):');
    for (const p of plan.problems) lines.push(`  ✖ ${p}`);
  }
  return lines.join('\n');
}
