import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '../../cloudfunctions/shared/config';
import { demoNoticeEnv } from '../../sandbox/notice-templates';
import { buildFunctions, listFunctions, readFunctionConfig, sdkVersion } from '../../scripts/build';
import { DEPLOY_VARIABLES, FILE_VARIABLES, parseEnvFile } from '../../scripts/golive/envfile';
import {
  type BuiltFunction,
  loadBuiltFunctions,
  loadRules,
  maskedPlan,
  type Plan,
  parseNeeds,
  planDeployment,
  renderPlan,
  type Step,
} from '../../scripts/golive/plan';
import { goodVars, merchantCerts, writeEnvFile } from './helpers';

const root = resolve(__dirname, '../..');
let dir: string;
let out: string;
let built: BuiltFunction[];
let vars: Record<string, string>;
let envFile: string;
let plan: Plan;

const stepsOf = <K extends Step['kind']>(p: Plan, kind: K) =>
  p.steps.filter((s): s is Extract<Step, { kind: K }> => s.kind === kind);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deploy-'));
  out = join(dir, 'dist');
  await buildFunctions({ out });
  built = loadBuiltFunctions(out, join(root, 'cloudfunctions'));
  const certs = await merchantCerts(join(dir, 'certs'));
  vars = goodVars(certs);
  envFile = writeEnvFile(dir, certs);
  plan = planDeployment({
    functions: built,
    vars,
    rules: loadRules(join(root, 'deploy')),
    sdkVersion: sdkVersion(),
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the deploy plan for this repository', () => {
  it('has no problems with a complete configuration', () => {
    expect(plan.problems).toEqual([]);
    expect(plan.envId).toBe('shop-1a2b3c');
  });

  it('creates functions on the chosen runtime, Nodejs24.11 by default, and says so', () => {
    expect(plan.runtime).toBe('Nodejs24.11');
    expect(stepsOf(plan, 'function.upload').every((s) => s.runtime === 'Nodejs24.11')).toBe(true);
    expect(renderPlan(maskedPlan(plan))).toContain('runtime Nodejs24.11 for new functions');
    const on22 = planDeployment({
      functions: built,
      vars: { ...vars, CLOUDBASE_FUNCTION_RUNTIME: 'Nodejs22.21' },
      rules: loadRules(join(root, 'deploy')),
      sdkVersion: sdkVersion(),
    });
    expect(on22.problems).toEqual([]);
    expect(stepsOf(on22, 'function.upload').every((s) => s.runtime === 'Nodejs22.21')).toBe(true);
  });

  it('uploads every built function with wx-server-sdk bundled in, so nothing is installed in the cloud', () => {
    const uploads = stepsOf(plan, 'function.upload');
    expect(uploads.map((s) => s.function)).toEqual(listFunctions());
    for (const s of uploads) {
      expect(s.files).toEqual(['config.json', 'index.js', 'package.json']);
      expect(s.dependencies).toEqual({});
      expect(s.bundledSdk).toBe(sdkVersion());
      expect(s.installDependency).toBe(false);
      expect(s.handler).toBe('index.main');
      expect(s.dir).toBe(join(out, s.function));
    }
  });

  it('configures each function with its config.json timeout before its code is replaced', () => {
    for (const fn of listFunctions()) {
      const config = stepsOf(plan, 'function.config').find((s) => s.function === fn);
      expect(config?.timeout).toBe(readFunctionConfig(fn).timeout ?? 3);
      const iConfig = plan.steps.findIndex((s) => s.kind === 'function.config' && s.function === fn);
      const iUpload = plan.steps.findIndex((s) => s.kind === 'function.upload' && s.function === fn);
      expect(iConfig).toBeLessThan(iUpload);
    }
  });

  it('sets exactly the timers of config.json: the bill check and reconcile triggers', () => {
    const expected = listFunctions().flatMap((fn) =>
      (readFunctionConfig(fn).triggers ?? []).map((trigger) => ({
        kind: 'function.trigger',
        function: fn,
        trigger,
      })),
    );
    expect(stepsOf(plan, 'function.trigger')).toEqual(expected);
    expect(expected).toEqual([
      {
        kind: 'function.trigger',
        function: 'billCheck',
        trigger: { name: 'billCheckMorning', type: 'timer', config: '0 */15 10-11 * * * *' },
      },
      {
        kind: 'function.trigger',
        function: 'reconcile',
        trigger: { name: 'reconcileEvery5Min', type: 'timer', config: '0 */5 * * * * *' },
      },
    ]);
  });

  it('gives the API key only to functions that call WeChat Pay and the certificate only to those that refund', () => {
    const envOf = (fn: string) =>
      stepsOf(plan, 'function.config').find((s) => s.function === fn)!.envVariables;
    for (const fn of listFunctions()) {
      const env = envOf(fn);
      expect(env['WXPAY_APPID']).toBe(vars['WXPAY_APPID']);
      expect(env['ADMIN_OPENIDS']).toBe(vars['ADMIN_OPENIDS']);
      expect(Object.keys(env).every((k) => k in CONFIG_VARIABLES)).toBe(true);
      const needs = parseNeeds(readFileSync(join(root, 'cloudfunctions', fn, 'index.ts'), 'utf8'));
      expect(needs, `${fn} declares its ConfigNeeds`).toBeDefined();
      expect('WXPAY_API_KEY' in env).toBe(Boolean(needs?.wxpay || needs?.cert));
      expect('WXPAY_KEY_PEM' in env).toBe(Boolean(needs?.cert));
    }
    expect('WXPAY_API_KEY' in envOf('listProducts')).toBe(false);
    expect('WXPAY_KEY_PEM' in envOf('payNotify')).toBe(false);
    expect('WXPAY_KEY_PEM' in envOf('approveRefund')).toBe(true);
    expect('WXPAY_KEY_PEM' in envOf('reconcile')).toBe(true);
    // One line each, so no console or API can cut a PEM at its first newline.
    expect(envOf('reconcile')['WXPAY_KEY_PEM']).not.toContain('\n');
    // Deploy credentials and deploy-only settings never reach a function.
    expect('CLOUDBASE_ENV_ID' in envOf('reconcile')).toBe(false);
  });

  it('gives each function only the notice templates it renders, so the certificate’s functions stay within 4 KB', () => {
    const withNotices = planDeployment({
      functions: built,
      vars: { ...vars, ...demoNoticeEnv() },
      rules: loadRules(join(root, 'deploy')),
      sdkVersion: sdkVersion(),
    });
    expect(withNotices.problems).toEqual([]);
    const configs = stepsOf(withNotices, 'function.config');
    const noticeVars = (fn: string) =>
      Object.keys(configs.find((s) => s.function === fn)!.envVariables)
        .filter((k) => k.startsWith('NOTICE_'))
        .sort();
    expect(noticeVars('approveRefund')).toEqual([
      'NOTICE_MINIPROGRAM_STATE',
      'NOTICE_REFUND_APPROVED',
      'NOTICE_REFUND_REJECTED',
    ]);
    expect(noticeVars('reconcile')).toEqual([
      'NOTICE_MINIPROGRAM_STATE',
      'NOTICE_ORDER_PAID',
      'NOTICE_REFUND_ATTENTION',
      'NOTICE_REFUND_CLOSED',
      'NOTICE_REFUND_COMPLETED',
    ]);
    expect(noticeVars('payNotify')).toEqual(['NOTICE_MINIPROGRAM_STATE', 'NOTICE_ORDER_PAID']);
    expect(noticeVars('noticeTemplates')).toHaveLength(9);
    expect(noticeVars('listProducts')).toEqual([]);
    for (const s of configs) expect(s.envBytes, s.function).toBeLessThanOrEqual(4096);
    // Each function's notice kinds, as parsed for deploy, are the ones it reads at cold start.
    expect(
      parseNeeds("callableFunction('x', { wxpay: true, notices: ['order_paid', \"refund_closed\"] }, h)"),
    ).toEqual({
      wxpay: true,
      notices: ['order_paid', 'refund_closed'],
    });
    expect(parseNeeds("callableFunction('x', { notices: 'all' }, h)")).toEqual({ notices: 'all' });
    expect(parseNeeds("callableFunction('x', { notices: ['no_such_kind'] }, h)")).toBeUndefined();
  });

  it('names the notice templates when they push a function over 4 KB', () => {
    const long = `${'t'.repeat(43)} ${Array.from({ length: 5 }, (_, i) => `character_string${i + 10}=orderId`).join(' ')}`;
    const over = planDeployment({
      functions: built,
      vars: {
        ...vars,
        NOTICE_ORDER_PAID: long,
        NOTICE_REFUND_ATTENTION: long.replace(/orderId/g, 'refundId'),
        NOTICE_REFUND_COMPLETED: long,
        NOTICE_REFUND_CLOSED: long,
        ADMIN_OPENIDS: Array(8).fill('oUpF8uMEb4qRXf22hE3X68TekukE').join(','),
      },
      rules: loadRules(join(root, 'deploy')),
      sdkVersion: sdkVersion(),
    });
    expect(over.problems).toEqual([
      expect.stringMatching(
        /^reconcile: its environment variables take \d+ bytes, over SCF's 4096: .*templates with fewer fields for its notices \(\d+ bytes of NOTICE_\* variables\)$/,
      ),
    ]);
  });

  it('routes the notify paths through HTTP access without authentication', () => {
    const domain = 'shop-1a2b3c.service.tcloudbase.com';
    expect(stepsOf(plan, 'access.route')).toEqual([
      {
        kind: 'access.route',
        path: '/pay/notify',
        function: 'payNotify',
        auth: false,
        domain,
        api: 'current',
      },
      {
        kind: 'access.route',
        path: '/refund/notify',
        function: 'refundNotify',
        auth: false,
        domain,
        api: 'current',
      },
    ]);
    expect(plan.notifyUrls.map((n) => `${n.variable}=${n.url}`)).toEqual([
      'WXPAY_NOTIFY_URL=https://shop-1a2b3c.service.tcloudbase.com/pay/notify',
      'WXPAY_REFUND_NOTIFY_URL=https://shop-1a2b3c.service.tcloudbase.com/refund/notify',
    ]);
  });

  it('creates the collections, the listing indexes and those reconcile and the bill check scan', () => {
    expect(stepsOf(plan, 'database.collection').map((s) => s.collection)).toEqual([
      'products',
      'orders',
      'refunds',
      'payment_events',
      'bill_checks',
      'notices',
      'caller_limits',
    ]);
    expect(
      stepsOf(plan, 'database.index').map(
        (s) => `${s.index.collection}:${s.index.keys.map((k) => `${k.field}${k.direction}`).join('+')}`,
      ),
    ).toEqual([
      'orders:openid1+createdAtMs-1',
      'orders:status1+createdAtMs-1',
      'refunds:status1+createdAtMs-1',
      'refunds:orderId1',
      'orders:reservationCheckAtMs1',
      'orders:status1+nextCheckAtMs1',
      'refunds:nextCheckAtMs1',
      'orders:status1+paidAtMs1',
      'refunds:status1+submittedAtMs1',
      'notices:status1+nextAttemptAtMs1',
      'notices:status1+leaseUntilMs1',
    ]);
  });

  it('closes every collection to clients and the notify and timer functions to the mini-program', () => {
    for (const s of stepsOf(plan, 'rules.database')) expect(s.rule).toEqual({ read: false, write: false });
    expect(stepsOf(plan, 'rules.database')).toHaveLength(7);
    expect(stepsOf(plan, 'rules.functions')[0]?.rule).toEqual({
      '*': { invoke: 'auth != null' },
      payNotify: { invoke: false },
      refundNotify: { invoke: false },
      reconcile: { invoke: false },
      billCheck: { invoke: false },
    });
  });

  it('prints no secret: the API key and private key appear only as their length', () => {
    const text = renderPlan(maskedPlan(plan));
    const json = JSON.stringify(maskedPlan(plan));
    const keyBody = vars['WXPAY_KEY_PEM']!.split('\n')[1]!;
    for (const printed of [text, json]) {
      expect(printed).not.toContain(vars['WXPAY_API_KEY']);
      expect(printed).not.toContain(keyBody);
      expect(printed).toContain('<secret, 32 chars>');
    }
    expect(text).toContain('WXPAY_API_KEY=<secret, 32 chars>');
    // The unmasked plan still carries the values the executor sets.
    expect(JSON.stringify(plan)).toContain(vars['WXPAY_API_KEY']);
  });
});

describe('the planner refuses a deployment that would not work', () => {
  const rules = () => loadRules(join(root, 'deploy'));
  const replan = (v: Record<string, string>, r = rules()) =>
    planDeployment({ functions: built, vars: v, rules: r, sdkVersion: sdkVersion() }).problems;

  it('when a notify function stays callable from the mini-program', () => {
    const r = rules();
    r.functions['payNotify'] = { invoke: 'auth != null' };
    expect(replan(vars, r)).toEqual(['deploy/function-rules.json must set "payNotify": { "invoke": false }']);
  });

  it('when a collection has no database rule', () => {
    const r = rules();
    delete r.database['refunds'];
    expect(replan(vars, r)).toEqual(['deploy/database-rules.json has no rule for refunds']);
  });

  it("when a function's variables exceed SCF's 4 KB", () => {
    const problems = replan({
      ...vars,
      ADMIN_OPENIDS: Array(200).fill('oUpF8uMEb4qRXf22hE3X68TekukE').join(','),
    });
    expect(
      problems.some((p) => /reconcile: its environment variables take \d+ bytes, over SCF's 4096/.test(p)),
    ).toBe(true);
  });

  it('when a notify URL is not the route path, or on another domain', () => {
    expect(
      replan({ ...vars, WXPAY_NOTIFY_URL: `https://shop-1a2b3c.service.tcloudbase.com/notify` }),
    ).toEqual([
      'WXPAY_NOTIFY_URL must end with the route path /pay/notify, is https://shop-1a2b3c.service.tcloudbase.com/notify',
    ]);
    expect(replan({ ...vars, WXPAY_REFUND_NOTIFY_URL: 'https://other.example.com/refund/notify' })).toEqual([
      'WXPAY_REFUND_NOTIFY_URL is https://other.example.com/refund/notify, but the route will be https://shop-1a2b3c.service.tcloudbase.com/refund/notify: remove it (deploy derives it) or set CLOUDBASE_HTTP_DOMAIN',
    ]);
  });

  it('when CLOUDBASE_FUNCTION_RUNTIME is not a CloudBase runtime, or config.json names another', () => {
    expect(replan({ ...vars, CLOUDBASE_FUNCTION_RUNTIME: 'Nodejs26' })).toEqual([
      'CLOUDBASE_FUNCTION_RUNTIME Nodejs26 is not a CloudBase Node.js runtime; use one of Nodejs24.11, Nodejs22.21, Nodejs20.19, Nodejs18.15, Nodejs16.13',
    ]);
    const pinned = built.map((f) =>
      f.name === 'whoami' ? { ...f, config: { ...f.config, runtime: 'Nodejs16.13' } } : f,
    );
    expect(
      planDeployment({ functions: pinned, vars, rules: rules(), sdkVersion: sdkVersion() }).problems,
    ).toEqual([
      'whoami/config.json names runtime Nodejs16.13, but the functions are deployed on Nodejs24.11 (CLOUDBASE_FUNCTION_RUNTIME)',
    ]);
  });

  it('when the environment or the WeChat Pay endpoint is a sandbox one', () => {
    const { CLOUDBASE_ENV_ID: _drop, ...noEnv } = vars;
    expect(replan(noEnv)).toContain('CLOUDBASE_ENV_ID is missing (the cloud environment to deploy to)');
    expect(replan({ ...vars, WXPAY_BASE_URL: 'https://127.0.0.1:4443' })).toEqual([
      'WXPAY_BASE_URL is https://127.0.0.1:4443, the local simulator; remove it to use WeChat Pay',
    ]);
  });
});

describe('the plan before the first deploy', () => {
  const fresh = () => {
    const {
      CLOUDBASE_HTTP_DOMAIN: _d,
      WXPAY_NOTIFY_URL: _n,
      WXPAY_REFUND_NOTIFY_URL: _r,
      ADMIN_OPENIDS: _a,
      ...rest
    } = vars;
    return rest;
  };

  it('derives the notify URLs from the environment id and sets them on the functions', () => {
    const p = planDeployment({
      functions: built,
      vars: fresh(),
      rules: loadRules(join(root, 'deploy')),
      sdkVersion: sdkVersion(),
    });
    expect(p.problems).toEqual([]);
    expect(p.notifyUrls.map((n) => `${n.variable}=${n.url} (${n.source})`)).toEqual([
      'WXPAY_NOTIFY_URL=https://shop-1a2b3c.ap-shanghai.app.tcloudbase.com/pay/notify (derived)',
      'WXPAY_REFUND_NOTIFY_URL=https://shop-1a2b3c.ap-shanghai.app.tcloudbase.com/refund/notify (derived)',
    ]);
    const payNotify = stepsOf(p, 'function.config').find((s) => s.function === 'payNotify')!;
    expect(payNotify.envVariables['WXPAY_NOTIFY_URL']).toBe(
      'https://shop-1a2b3c.ap-shanghai.app.tcloudbase.com/pay/notify',
    );
    expect(
      p.warnings.some((w) => w.includes('default domain shop-1a2b3c.ap-shanghai.app.tcloudbase.com')),
    ).toBe(true);
  });

  it('does not need ADMIN_OPENIDS: the admin finds their openid only after deploying', () => {
    const p = planDeployment({
      functions: built,
      vars: fresh(),
      rules: loadRules(join(root, 'deploy')),
      sdkVersion: sdkVersion(),
    });
    expect(p.problems).toEqual([]);
    expect('ADMIN_OPENIDS' in stepsOf(p, 'function.config')[0]!.envVariables).toBe(false);
  });

  it('warns that an end-of-life runtime gets no security fixes', () => {
    const p = planDeployment({
      functions: built,
      vars: { ...vars, CLOUDBASE_FUNCTION_RUNTIME: 'Nodejs16.13' },
      rules: loadRules(join(root, 'deploy')),
      sdkVersion: sdkVersion(),
    });
    expect(p.problems).toEqual([]);
    expect(p.warnings).toContain(
      'runtime Nodejs16.13: Node.js 16 is end-of-life since 2023-09-11 (no security fixes); choose Nodejs24.11',
    );
  });
});

describe('deploy.env', () => {
  it('reads certificates by file, strips quotes and rejects unknown names', () => {
    const files: Record<string, string> = {
      '/c/cert.pem': '-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n',
    };
    const env = parseEnvFile(
      [
        '# comment',
        'WXPAY_MCHID="10000100"',
        'WXPAY_CERT_PEM_FILE=cert.pem',
        'WXPAY_PFX_FILE=/c/missing.p12',
        'WXPAY_APIKEY=typo',
        'not a line',
      ].join('\n'),
      {
        baseDir: '/c',
        readFile: (p) => {
          if (!(p in files)) throw Object.assign(new Error('nope'), { code: 'ENOENT' });
          return Buffer.from(files[p]!);
        },
      },
    );
    expect(env.vars).toEqual({ WXPAY_MCHID: '10000100', WXPAY_CERT_PEM: files['/c/cert.pem']!.trim() });
    expect(env.problems).toEqual([
      'WXPAY_PFX_FILE: cannot read /c/missing.p12 (ENOENT)',
      'line 5: unknown variable WXPAY_APIKEY (see deploy/deploy.env.example)',
      'line 6: expected NAME=value',
    ]);
  });

  it('has an example naming every variable, and GOING_LIVE.md documents each', () => {
    const example = readFileSync(join(root, 'deploy/deploy.env.example'), 'utf8');
    const doc = readFileSync(join(root, 'docs/GOING_LIVE.md'), 'utf8');
    for (const k of [
      ...Object.keys(CONFIG_VARIABLES),
      ...Object.keys(DEPLOY_VARIABLES),
      ...Object.keys(FILE_VARIABLES),
    ]) {
      expect(example, k).toMatch(new RegExp(`^#? ?${k}=`, 'm'));
      expect(doc, k).toContain(`\`${k}\``);
    }
    const uncommented = parseEnvFile(example.replace(/^(\w+_FILE)=.*$/gm, '$1='), { baseDir: root });
    expect(uncommented.problems).toEqual([]);
  });
});

describe('npm run deploy -- --dry-run', () => {
  const run = (...args: string[]) =>
    spawnSync(
      process.execPath,
      [
        join(root, 'node_modules/tsx/dist/cli.mjs'),
        join(root, 'scripts/deploy.ts'),
        '--dry-run',
        '--env-file',
        envFile,
        '--out',
        join(dir, 'cli-dist'),
        ...args,
      ],
      {
        encoding: 'utf8',
        cwd: root,
        // Any TCP connection or DNS lookup kills the child with exit code 97.
        env: {
          PATH: process.env['PATH'],
          NODE_OPTIONS: `--require ${join(__dirname, 'no-network.cjs')}`,
        },
        timeout: 60_000,
      },
    );

  it('prints the whole plan, exits 0 and touches no network', () => {
    const r = run();
    expect(r.stderr).not.toContain('NETWORK ATTEMPT');
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('Deploy plan for environment shop-1a2b3c');
    for (const fn of listFunctions())
      expect(r.stdout).toContain(
        `upload ${fn} (config.json, index.js, package.json; wx-server-sdk ${sdkVersion()} bundled in index.js, nothing installed`,
      );
    expect(r.stdout).toContain('timer trigger reconcileEvery5Min on reconcile: "0 */5 * * * * *"');
    expect(r.stdout).toContain(
      'HTTP access https://shop-1a2b3c.service.tcloudbase.com/pay/notify → payNotify',
    );
    expect(r.stdout).toContain('runtime Nodejs24.11 for new functions');
    expect(r.stdout).toContain(
      'WXPAY_REFUND_NOTIFY_URL=https://shop-1a2b3c.service.tcloudbase.com/refund/notify',
    );
    expect(r.stdout).not.toContain(vars['WXPAY_API_KEY']);
    expect(r.stdout).not.toContain(vars['WXPAY_KEY_PEM']!.split('\n')[1]);
    expect(r.stdout).not.toMatch(/^✖/m);
  });

  it('prints the same plan as JSON with --json', () => {
    const r = run('--json');
    expect(r.status, r.stderr).toBe(0);
    const printed = JSON.parse(r.stdout) as Plan;
    expect(printed.steps.map((s) => s.kind)).toEqual(plan.steps.map((s) => s.kind));
    expect(r.stdout).not.toContain(vars['WXPAY_API_KEY']);
  });
});
