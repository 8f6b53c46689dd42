/**
 * Walks docs/GOING_LIVE.md §1 in its order with a fresh deploy.env (a copy of the example):
 * every documented command either succeeds or names exactly what is missing. WeChat Pay is the
 * local simulator (for --online), Tencent Cloud the fake (deploy and --deployed run with
 * --sandbox), the mini-program a copy of this project's two configured files.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { CertPaths } from '../../sandbox/certs';
import { FakeTencentCloud } from '../../sandbox/tcloud/fake';
import { SANDBOX_CREDENTIALS } from '../../sandbox/tcloud/index';
import { enableInvoke } from '../../sandbox/tcloud/invoke';
import { startWxPaySimulator, type WxPaySimulator } from '../../sandbox/wxpay';
import { listFunctions } from '../../scripts/build';
import { ADMIN, MERCHANT, merchantCerts } from './helpers';

const root = resolve(__dirname, '../..');
let dir: string;
let envFile: string;
let project: string;
let state: string;
let certs: CertPaths;
let sim: WxPaySimulator;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'golive-'));
  certs = await merchantCerts(join(dir, 'downloads'));
  sim = await startWxPaySimulator({ certs, merchants: [{ ...MERCHANT, signType: 'MD5' }], timeScale: 0.001 });
  project = join(dir, 'project');
  mkdirSync(join(project, 'miniprogram'), { recursive: true });
  copyFileSync(join(root, 'project.config.json'), join(project, 'project.config.json'));
  copyFileSync(join(root, 'miniprogram/app.ts'), join(project, 'miniprogram/app.ts'));
  envFile = join(dir, 'deploy.env');
  copyFileSync(join(root, 'deploy/deploy.env.example'), envFile);
  state = join(dir, 'tcloud.json');
});
afterAll(async () => {
  await sim?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Sets NAME=value in the env file, as the merchant would edit it. */
function setVar(name: string, value: string): void {
  const text = readFileSync(envFile, 'utf8');
  const line = new RegExp(`^#? ?${name}=.*$`, 'm');
  writeFileSync(
    envFile,
    line.test(text) ? text.replace(line, `${name}=${value}`) : `${text}\n${name}=${value}\n`,
  );
}

/** The commands of §1, in order, as the document spells them. */
function documentedCommands(): string[] {
  const doc = readFileSync(join(root, 'docs/GOING_LIVE.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## 1. The way in, in order'), doc.indexOf('## 2. What deploy does'));
  return [...section.matchAll(/`(npm run (?:configure|doctor|deploy) -- [^`]+)`/g)].map((m) => m[1]!);
}

/**
 * Runs a documented command: `deploy.env` is this walk's file; the mini-program is the copy;
 * Tencent Cloud is the fake (--sandbox); --online talks to the local simulator.
 */
async function run(command: string) {
  const args = command.replace(/^npm run (\w+) -- /, '').split(' ');
  const script = /^npm run (\w+)/.exec(command)![1]!;
  const argv = args.map((a) => (a === 'deploy.env' ? envFile : a));
  if (script === 'configure' || script === 'doctor') argv.push('--project', project);
  if ((script === 'deploy' && !argv.includes('--dry-run')) || argv.includes('--deployed')) {
    if (!argv.includes('--sandbox')) argv.push('--sandbox');
    argv.push('--sandbox-state', state);
  }
  if (script === 'deploy') argv.push('--out', join(dir, 'dist'));
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '' };
  if (script === 'doctor' && argv.includes('--online')) {
    env['WXPAY_BASE_URL'] = sim.url;
    env['WXPAY_CA_PEM'] = readFileSync(certs.caCertPath, 'utf8');
  }
  return promisify(execFile)(
    process.execPath,
    [join(root, 'node_modules/tsx/dist/cli.mjs'), join(root, `scripts/${script}.ts`), ...argv],
    { encoding: 'utf8', env, timeout: 120_000, maxBuffer: 8 << 20 },
  ).then(
    (r) => ({ status: 0, out: r.stdout + r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ status: e.code, out: e.stdout + e.stderr }),
  );
}

it('follows GOING_LIVE §1 from a fresh deploy.env to a shop ready for its first payment', {
  timeout: 400_000,
}, async () => {
  const steps = documentedCommands();
  expect(steps).toEqual([
    'npm run configure -- --env-file deploy.env',
    'npm run doctor -- --env-file deploy.env --online',
    'npm run deploy -- --env-file deploy.env --sandbox',
    'npm run deploy -- --env-file deploy.env --dry-run',
    'npm run deploy -- --env-file deploy.env',
    'npm run doctor -- --env-file deploy.env --online --deployed',
    'npm run deploy -- --env-file deploy.env',
  ]);
  const [configure, doctor, rehearse, dryRun, deploy, doctorDeployed, redeploy] = steps.map((s) => s) as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];

  // Step 5 on the fresh file: it names the two values it needs (and the files not there yet).
  let r = await run(configure);
  expect(r.status).toBe(1);
  expect(r.out).toContain(
    '✖ WXPAY_APPID is missing: the mini-program AppID (小程序后台 → 开发管理 → 开发设置 → AppID)',
  );
  expect(r.out).toContain(
    '✖ CLOUDBASE_ENV_ID is missing: the environment id (WeChat DevTools → 云开发 → 设置 → 环境ID)',
  );
  setVar('WXPAY_APPID', MERCHANT.appid);
  setVar('CLOUDBASE_ENV_ID', 'shop-1a2b3c');
  r = await run(configure);
  expect(r.status, r.out).toBe(0);
  expect(readFileSync(join(project, 'project.config.json'), 'utf8')).toContain(
    `"appid": "${MERCHANT.appid}"`,
  );
  expect(readFileSync(join(project, 'miniprogram/app.ts'), 'utf8')).toContain(
    "wx.cloud.init({ env: 'shop-1a2b3c', traceUser: true })",
  );

  // Step 6: the certificate files of step 2 are not downloaded yet, and the merchant values unset.
  r = await run(doctor);
  expect(r.status).toBe(1);
  expect(r.out).toMatch(/✖ .*WXPAY_CERT_PEM_FILE: cannot read .*apiclient_cert\.pem \(ENOENT\)/);
  copyFileSync(certs.certPath, join(dir, 'apiclient_cert.pem'));
  copyFileSync(certs.keyPath, join(dir, 'apiclient_key.pem'));
  r = await run(doctor);
  expect(r.status).toBe(1);
  expect(r.out).toContain('✖ mch_id: WXPAY_MCHID is missing');
  expect(r.out).toContain('✖ API key: WXPAY_API_KEY is missing');
  expect(r.out).toMatch(/not ready for the first deploy: \d+ to fix \(functions start, mch_id, API key/);
  setVar('WXPAY_MCHID', MERCHANT.mchId);
  setVar('WXPAY_API_KEY', MERCHANT.apiKey);
  r = await run(doctor);
  expect(r.status, r.out).toBe(0);
  expect(r.out).toContain('✔ WeChat Pay round trip: signed ORDERNOTEXIST');
  expect(r.out).toContain('ready for the first deploy');
  // An empty ADMIN_OPENIDS waits for the 我的 page: it does not block the deploy.
  expect(r.out).toContain('not ready for the first payment: 1 to fix (admin openids)');

  // Steps 7 and 8: rehearse, dry run, deploy.
  r = await run(rehearse);
  expect(r.status, r.out).toBe(0);
  // The read-back lists every function Active on the runtime, the timer, both routes with
  // authentication off, the collections with their indexes, and the rules.
  for (const fn of listFunctions())
    expect(r.out).toMatch(new RegExp(`✔ function ${fn}: Active, Nodejs24\\.11, `));
  expect(r.out).toContain('timer reconcileEvery5Min "0 */5 * * * * *"');
  expect(r.out).toContain(
    '✔ route /refund/notify: https://shop-1a2b3c.ap-shanghai.app.tcloudbase.com/refund/notify → refundNotify, authentication off',
  );
  expect(r.out).toContain('✔ collection orders: indexes openid_createdAtMs, status_createdAtMs');
  expect(r.out).toContain(
    '✔ collection refunds: indexes status_createdAtMs, orderId, nextCheckAtMs, status_submittedAtMs',
  );
  expect(r.out).toContain('✔ security rules: 8 applied');
  expect(r.out).toContain(
    '✔ route /pay/notify: https://shop-1a2b3c.ap-shanghai.app.tcloudbase.com/pay/notify → payNotify, authentication off',
  );
  expect(r.out).toContain('its 我的 page shows your openid');
  r = await run(dryRun);
  expect(r.status, r.out).toBe(0);
  r = await run(deploy);
  expect(r.status, r.out).toBe(0);
  expect(r.out).toContain('deployed.');

  // Step 9: the deployed shop answers; only the admins are missing before the first payment.
  r = await run(doctorDeployed);
  expect(r.status).toBe(1);
  expect(r.out).toContain('✔ deployed whoami: starts with its configuration');
  expect(r.out).toContain('✔ GET WXPAY_NOTIFY_URL:');
  expect(r.out).toContain('✔ mini-program configuration: appid wx2421b1c4370ec43b, environment shop-1a2b3c');
  expect(r.out).toContain('not ready for the first payment: 1 to fix (admin openids)');

  // Step 10: the 我的 page calls whoami as the reviewer and shows the openid.
  const fake = new FakeTencentCloud({ credentials: [SANDBOX_CREDENTIALS], stateFile: state });
  enableInvoke(fake);
  const env = fake.env('shop-1a2b3c');
  const shown = fake.invoker!(
    env,
    env.functions['whoami']!,
    {},
    {
      WX_CONTEXT_KEYS: 'WX_OPENID,WX_APPID',
      WX_OPENID: ADMIN,
      WX_APPID: MERCHANT.appid,
      TCB_SOURCE: 'wx_client',
    },
  );
  expect(shown.result).toEqual({ ok: true, data: { isAdmin: false, openid: ADMIN } });
  setVar('ADMIN_OPENIDS', (shown.result as { data: { openid: string } }).data.openid);
  r = await run(redeploy);
  expect(r.status, r.out).toBe(0);
  expect(r.out).toMatch(/function\.config whoami: updated/);
  expect(r.out).toMatch(/function\.upload whoami: unchanged/);

  // And the shop is ready for its first payment (the default domain stays a warning).
  r = await run(doctorDeployed);
  expect(r.status, r.out).toBe(0);
  expect(r.out).toContain('ready for the first payment (1 warning(s))');
});
