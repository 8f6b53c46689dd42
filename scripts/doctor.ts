/**
 * `npm run doctor [-- --env-file deploy.env] [--online] [--deployed [--sandbox]]`
 *
 * Checks a configuration before going live, one line per check (✔ ok, ! warning, ✖ must be
 * fixed), grouped by when it matters: before the first deploy, or before the first payment
 * (admins, the custom domain, the WeChat Pay key proven online, the deployed environment).
 * Exit 1 when something blocks the next step: the deploy, or with --deployed the first payment.
 *
 * `--online` adds a signed query round trip against WXPAY_BASE_URL (WeChat Pay by default)
 * for each provider in use: APIv2's orderquery proves the key, appid and mch_id; APIv3's
 * proves the private key and serial (WeChat accepts the Authorization) and the WeChat Pay key
 * (the answer verifies). cloudPay can only be proven from the mini-program. `--deployed` reads the environment back
 * (each function's status and runtime, the timer, the routes, collections and indexes), calls
 * the deployed whoami and GETs both notify URLs. `--sandbox` does that against the fake
 * environment `npm run deploy -- --sandbox` left in .data/tcloud/.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildFunctions, sdkVersion } from './build';
import { type Check, checkConfiguration, checkOnlineProviders, renderStages } from './golive/checks';
import { fromProcessEnv, readEnvFile } from './golive/envfile';
import { discoverEnvironment, discoverHttpAccess, type ManagerApi } from './golive/executor';
import { withPemPair } from './golive/pkcs12';
import { DEFAULT_REGION, loadBuiltFunctions, loadRules, planDeployment } from './golive/plan';
import { checkNotifyRoutes, checkWhoami, httpProbe, verifyDeployment } from './golive/verify';

const root = resolve(fileURLToPath(import.meta.url), '../..');
const USAGE =
  'usage: npm run doctor -- [--env-file deploy.env] [--online] [--deployed [--sandbox [--sandbox-state file]]]  (default: the process environment)';

const payment = (c: Check): Check => ({ ...c, stage: 'payment' });

/**
 * The variables a deploy could have set: it refuses a local WXPAY_BASE_URL (the simulator, for
 * --online rehearsals), so neither it nor the simulator's CA can be on a deployed function.
 */
function deployable(vars: Record<string, string>): Record<string, string> {
  const base = vars['WXPAY_BASE_URL'];
  if (!base || !/^https?:\/\/(127\.0\.0\.1|localhost)[:/]/.test(`${base}/`)) return vars;
  const { WXPAY_BASE_URL: _b, WXPAY_CA_PEM: _c, ...rest } = vars;
  return rest;
}

async function deployedChecks(
  vars: Record<string, string>,
  sandbox: { stateFile: string } | undefined,
): Promise<Check[]> {
  const envId = vars['CLOUDBASE_ENV_ID'] ?? '';
  let managerFor: (region: string) => ManagerApi;
  let close: () => Promise<void> = async () => undefined;
  let via: string | undefined;
  if (sandbox) {
    const { startSandboxCloud, startSandboxGateway } = await import('../sandbox/tcloud');
    const cloud = startSandboxCloud(
      { envId, region: vars['CLOUDBASE_REGION'] ?? DEFAULT_REGION },
      { stateFile: sandbox.stateFile },
    );
    const gateway = await startSandboxGateway(cloud.fake);
    via = gateway.url;
    close = async () => {
      await gateway.close();
      cloud.uninstall();
    };
    const { default: CloudBase } = await import('@cloudbase/manager-node');
    managerFor = (region) => new CloudBase({ ...cloud.credentials, envId, region });
  } else {
    const secretId = vars['TENCENTCLOUD_SECRETID'];
    const secretKey = vars['TENCENTCLOUD_SECRETKEY'];
    if (!secretId || !secretKey) {
      return [
        payment({
          status: 'fail',
          name: 'deployed environment',
          detail: 'TENCENTCLOUD_SECRETID / TENCENTCLOUD_SECRETKEY are not set',
          fix: 'export them in the shell (访问管理 → API密钥), then run the doctor again',
        }),
      ];
    }
    const { default: CloudBase } = await import('@cloudbase/manager-node');
    managerFor = (region) => new CloudBase({ secretId, secretKey, envId, region });
  }
  const out = mkdtempSync(join(tmpdir(), 'doctor-build-'));
  try {
    const env = await discoverEnvironment(envId, vars['CLOUDBASE_REGION'], managerFor);
    const http = await discoverHttpAccess(env.manager, envId);
    // The same build deploy would upload, so the read-back can tell whether it is what runs.
    await buildFunctions({ out });
    const plan = planDeployment({
      functions: loadBuiltFunctions(out, resolve(root, 'cloudfunctions')),
      vars: withPemPair(deployable(vars)).vars,
      rules: loadRules(resolve(root, 'deploy')),
      sdkVersion: sdkVersion(),
      facts: {
        region: env.region,
        namespace: env.namespace,
        httpApi: http.httpApi,
        ...(http.defaultDomain ? { defaultDomain: http.defaultDomain } : {}),
      },
    });
    const checks = [
      {
        status: 'ok' as const,
        name: 'deployed environment',
        detail: `${envId} in ${env.region}; ${http.note}`,
      },
      ...(await verifyDeployment(plan, env.manager)),
      await checkWhoami(env.manager),
      ...(await checkNotifyRoutes(plan, httpProbe(via))),
    ];
    return checks.map(payment);
  } catch (e) {
    return [
      payment({
        status: 'fail',
        name: 'deployed environment',
        detail: e instanceof Error ? e.message : String(e),
        fix: 'check CLOUDBASE_ENV_ID, CLOUDBASE_REGION and the API key; run npm run deploy first',
      }),
    ];
  } finally {
    rmSync(out, { recursive: true, force: true });
    await close();
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  let envFile: string | undefined;
  let online = false;
  let deployed = false;
  let sandbox = false;
  let stateFile = resolve(root, '.data/tcloud/state.json');
  let project = root;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--env-file') envFile = argv[++i];
    else if (a === '--online') online = true;
    else if (a === '--deployed') deployed = true;
    else if (a === '--sandbox') sandbox = true;
    else if (a === '--sandbox-state') stateFile = resolve(argv[++i] ?? '');
    else if (a === '--project') project = resolve(argv[++i] ?? '');
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      return 0;
    } else {
      console.error(`unknown argument ${a}\n${USAGE}`);
      return 2;
    }
  }

  let vars = fromProcessEnv(process.env);
  if (envFile) {
    const file = readEnvFile(resolve(envFile));
    if (file.problems.length > 0) {
      for (const p of file.problems) console.log(`✖ ${envFile}: ${p}`);
      return 1;
    }
    vars = { ...vars, ...file.vars };
  }

  const checks = checkConfiguration(vars, { now: Date.now(), root: project });
  // What was asked for explicitly: a failure there is always an answer worth exit 1.
  const requested: Check[] = [];
  if (online) requested.push(...(await checkOnlineProviders(vars)));
  if (deployed) requested.push(...(await deployedChecks(vars, sandbox ? { stateFile } : undefined)));
  checks.push(...requested);
  console.log(renderStages(checks));
  const hints = [
    online ? '' : '--online to prove the key with WeChat Pay',
    deployed ? '' : '--deployed to check the deployed environment',
  ].filter(Boolean);
  if (hints.length) console.log(`(add ${hints.join(', ')})`);
  // What blocks the next step: the deploy; once checking the deployed shop, the first payment.
  const blocking = checks.filter(
    (c) => c.status === 'fail' && ((c.stage ?? 'deploy') === 'deploy' || deployed || requested.includes(c)),
  );
  return blocking.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
