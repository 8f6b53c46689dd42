/**
 * The merchant's local configuration file for going live (`deploy.env`, git-ignored): the
 * function variables of CONFIG_VARIABLES, the deploy-only variables below, and `*_FILE`
 * shortcuts that point at the files downloaded from the merchant platform, so nobody has to
 * paste a PEM into one line by hand. Deploy and doctor read it the same way.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { CONFIG_VARIABLES, type ConfigVariable } from '../../cloudfunctions/shared/config';

/** Used by `npm run deploy` only; never set on a function. */
export const DEPLOY_VARIABLES = {
  CLOUDBASE_ENV_ID: 'the cloud environment id (云开发控制台 → 设置 → 环境ID), e.g. shop-1a2b3c',
  CLOUDBASE_REGION:
    'region of the environment (default: deploy asks the environment; set it to make deploy check it)',
  CLOUDBASE_HTTP_DOMAIN:
    "an ICP-filed custom domain bound to HTTP access, for the notify URLs (default: the environment's default domain <env-id>.<region>.app.tcloudbase.com)",
  CLOUDBASE_FUNCTION_RUNTIME:
    'runtime for newly created functions: Nodejs24.11 (default), Nodejs22.21, Nodejs20.19, Nodejs18.15 or Nodejs16.13; existing functions keep theirs',
  TENCENTCLOUD_SECRETID:
    'Tencent Cloud API key id (访问管理 → API密钥) of an account that may manage the environment',
  TENCENTCLOUD_SECRETKEY: 'Tencent Cloud API secret key; better set in the shell than in the file',
} as const;

/** `X_FILE=path` in the env file becomes `X=<content>` (PEM text, or base64 for the .p12). */
export const FILE_VARIABLES = {
  WXPAY_CERT_PEM_FILE: { target: 'WXPAY_CERT_PEM', encoding: 'pem' },
  WXPAY_KEY_PEM_FILE: { target: 'WXPAY_KEY_PEM', encoding: 'pem' },
  WXPAY_PFX_FILE: { target: 'WXPAY_PFX_BASE64', encoding: 'base64' },
  WXPAY_CA_PEM_FILE: { target: 'WXPAY_CA_PEM', encoding: 'pem' },
  WXPAY_V3_PUBLIC_KEY_PEM_FILE: { target: 'WXPAY_V3_PUBLIC_KEY_PEM', encoding: 'pem' },
  WXPAY_V3_PLATFORM_CERTS_PEM_FILE: { target: 'WXPAY_V3_PLATFORM_CERTS_PEM', encoding: 'pem' },
  WXPAY_V3_PRIVATE_KEY_PEM_FILE: { target: 'WXPAY_V3_PRIVATE_KEY_PEM', encoding: 'pem' },
} as const satisfies Record<string, { target: ConfigVariable; encoding: 'pem' | 'base64' }>;

export type DeployVariable = keyof typeof DEPLOY_VARIABLES;

/** Values that never appear in any output, only their length. */
export const SECRET_VARIABLES: ReadonlySet<string> = new Set([
  'WXPAY_API_KEY',
  'WXPAY_KEY_PEM',
  'WXPAY_V3_KEY',
  'WXPAY_V3_PRIVATE_KEY_PEM',
  'WXPAY_PFX_BASE64',
  'WXPAY_PFX_PASSPHRASE',
  'TENCENTCLOUD_SECRETID',
  'TENCENTCLOUD_SECRETKEY',
]);

export function isConfigVariable(k: string): k is ConfigVariable {
  return Object.hasOwn(CONFIG_VARIABLES, k);
}

/** How a value is shown in a plan or a report. */
export function maskValue(key: string, value: string): string {
  if (SECRET_VARIABLES.has(key)) return `<secret, ${value.length} chars>`;
  // Certificates are public but long; their size matters (SCF's 4 KB environment limit).
  if (value.includes('-----BEGIN') || value.length > 120) return `<${value.length} chars>`;
  return value;
}

export interface EnvFile {
  vars: Record<string, string>;
  problems: string[];
}

function unquote(raw: string): string {
  const v = raw.trim();
  if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v[v.length - 1] === v[0]) return v.slice(1, -1);
  return v;
}

/**
 * Parses `KEY=value` lines (`#` comments, blank lines, optional quotes; one line per value:
 * PEM content goes through `*_FILE` or with `\n` escapes). Unknown names are problems, so a
 * typo does not silently leave a variable unset in production.
 */
export function parseEnvFile(
  text: string,
  opts: { baseDir: string; readFile?: (path: string) => Buffer },
): EnvFile {
  const readFile = opts.readFile ?? ((p: string) => readFileSync(p));
  const vars: Record<string, string> = {};
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Z][A-Z0-9_]*)\s*=(.*)$/.exec(trimmed);
    if (!m) {
      problems.push(`line ${i + 1}: expected NAME=value`);
      return;
    }
    const key = m[1]!;
    const value = unquote(m[2]!);
    if (Object.hasOwn(FILE_VARIABLES, key)) {
      const { target, encoding } = FILE_VARIABLES[key as keyof typeof FILE_VARIABLES];
      if (value === '') return;
      const path = isAbsolute(value) ? value : resolve(opts.baseDir, value);
      try {
        const content = readFile(path);
        vars[target] = encoding === 'base64' ? content.toString('base64') : content.toString('utf8').trim();
      } catch (e) {
        problems.push(`${key}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      return;
    }
    if (!isConfigVariable(key) && !Object.hasOwn(DEPLOY_VARIABLES, key)) {
      problems.push(`line ${i + 1}: unknown variable ${key} (see deploy/deploy.env.example)`);
      return;
    }
    if (value !== '') vars[key] = value;
  });
  return { vars, problems };
}

export function readEnvFile(path: string): EnvFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return { vars: {}, problems: [`cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`] };
  }
  return parseEnvFile(text, { baseDir: dirname(resolve(path)) });
}

/** The known variables of a process environment (for CI, where secrets come from the runner). */
export function fromProcessEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v !== undefined && v !== '' && (isConfigVariable(k) || Object.hasOwn(DEPLOY_VARIABLES, k)))
      vars[k] = v;
  }
  return vars;
}
