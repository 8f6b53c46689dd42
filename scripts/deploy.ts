/**
 * `npm run deploy [-- --env-file deploy.env] [--dry-run] [--json] [--out dir] [--sandbox]`
 *
 * Builds every function and puts the shop on a CloudBase environment: functions (code,
 * timeout, variables, timer), collections and indexes, HTTP access for the notifies, the
 * security rules in deploy/; then reads it all back and says what it found. `--dry-run`
 * prints the plan (secrets masked) with no credentials and no network. `--sandbox` deploys to
 * the offline fake of the Tencent Cloud API instead (state in .data/tcloud/), to rehearse.
 *
 * Order: ask the environment for its region and HTTP access service first (DescribeEnvInfo,
 * DescribeHTTPServiceRoute), plan with those facts (the notify URLs derive from them), then
 * deploy, then read back. A second run changes only what differs; a run that stopped half-way
 * finishes on the next.
 *
 * Tooling: @cloudbase/manager-node (Tencent Cloud API keys), not miniprogram-ci, which only
 * uploads function code and timer triggers: it cannot set variables or the timeout, create
 * HTTP access routes, collections or indexes, or apply security rules.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildFunctions, sdkVersion } from './build';
import { checkConfiguration, renderChecks } from './golive/checks';
import { type EnvFile, fromProcessEnv, readEnvFile } from './golive/envfile';
import { DeployError, type ManagerApi } from './golive/executor';
import { deployEnvironment } from './golive/flow';
import { withPemPair } from './golive/pkcs12';
import {
  DEFAULT_REGION,
  loadBuiltFunctions,
  loadRules,
  maskedPlan,
  type Plan,
  planDeployment,
  renderPlan,
} from './golive/plan';

const root = resolve(fileURLToPath(import.meta.url), '../..');

interface Args {
  envFile: string | undefined;
  dryRun: boolean;
  json: boolean;
  out: string;
  sandbox: boolean;
  sandboxState: string;
}

const USAGE =
  'usage: npm run deploy -- [--env-file deploy.env] [--dry-run] [--json] [--out dir] [--sandbox [--sandbox-state file]]';

function parseArgs(argv: string[]): Args {
  const args: Args = {
    envFile: undefined,
    dryRun: false,
    json: false,
    out: resolve(root, 'dist/cloudfunctions'),
    sandbox: false,
    sandboxState: resolve(root, '.data/tcloud/state.json'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--dry-run') args.dryRun = true;
    else if (a === '--json') args.json = true;
    else if (a === '--sandbox') args.sandbox = true;
    else if (a === '--sandbox-state') args.sandboxState = resolve(argv[++i] ?? '');
    else if (a === '--env-file') args.envFile = argv[++i];
    else if (a === '--out') args.out = resolve(argv[++i] ?? '');
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  return args;
}

/** deploy.env by default; without it, the process environment (CI with secrets from the runner). */
function loadVariables(envFile: string | undefined): EnvFile {
  const path = envFile ?? resolve(root, 'deploy.env');
  const file = readEnvFile(path);
  if (envFile === undefined && file.problems.some((p) => p.startsWith('cannot read'))) {
    return { vars: fromProcessEnv(process.env), problems: [] };
  }
  // Credentials may stay in the shell rather than in the file.
  return { vars: { ...fromProcessEnv(process.env), ...file.vars }, problems: file.problems };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const loaded = loadVariables(args.envFile);
  const pem = withPemPair(loaded.vars);
  const vars = pem.vars;
  const log = args.json ? () => undefined : (s: string) => console.log(s);

  const t0 = Date.now();
  await buildFunctions({ out: args.out });
  log(`built functions into ${args.out} in ${Date.now() - t0} ms`);
  if (pem.note) log(`note: ${pem.note}`);

  const functions = loadBuiltFunctions(args.out, resolve(root, 'cloudfunctions'));
  const rules = loadRules(resolve(root, 'deploy'));
  const plan0 = planDeployment({ functions, vars, rules, sdkVersion: sdkVersion() });
  const checks = checkConfiguration(vars, { now: Date.now() });
  // Only what the first deploy needs stops it; the rest is for the first payment.
  const blocking = checks.filter((c) => c.status === 'fail' && (c.stage ?? 'deploy') === 'deploy');
  plan0.problems.unshift(
    ...loaded.problems,
    ...(pem.problem ? [pem.problem] : []),
    ...blocking.map((c) => `doctor: ${c.name}: ${c.detail}`),
  );

  if (args.json) {
    console.log(JSON.stringify({ ...maskedPlan(plan0), checks }, null, 2));
    return plan0.problems.length > 0 ? 1 : 0;
  }
  log(renderChecks(checks));
  log('');
  log(renderPlan(maskedPlan(plan0)));
  if (args.dryRun || plan0.problems.length > 0) return plan0.problems.length > 0 ? 1 : 0;

  let managerFor: (region: string) => ManagerApi;
  let uninstall: () => void = () => undefined;
  let pollMs = 1000;
  if (args.sandbox) {
    // Loaded only here: the real deploy never touches the fake.
    const { startSandboxCloud } = await import('../sandbox/tcloud');
    const cloud = startSandboxCloud(
      { envId: plan0.envId, region: vars['CLOUDBASE_REGION'] ?? DEFAULT_REGION },
      { stateFile: args.sandboxState },
    );
    uninstall = cloud.uninstall;
    pollMs = 50;
    const { default: CloudBase } = await import('@cloudbase/manager-node');
    managerFor = (region) => new CloudBase({ ...cloud.credentials, envId: plan0.envId, region });
    log(
      `\nSANDBOX: deploying to the offline Tencent Cloud fake (state ${args.sandboxState}), not to CloudBase`,
    );
  } else {
    const secretId = vars['TENCENTCLOUD_SECRETID'];
    const secretKey = vars['TENCENTCLOUD_SECRETKEY'];
    if (!secretId || !secretKey) {
      console.error(
        'TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY are needed to deploy (see docs/GOING_LIVE.md)',
      );
      return 1;
    }
    // Loaded only here: --dry-run and the planner tests never need the Tencent Cloud SDK.
    const { default: CloudBase } = await import('@cloudbase/manager-node');
    managerFor = (region) => new CloudBase({ secretId, secretKey, envId: plan0.envId, region });
  }

  try {
    log('');
    const out = await deployEnvironment({
      functions,
      vars,
      rules,
      sdkVersion: sdkVersion(),
      managerFor,
      log,
      pollMs,
    });
    const { plan, readBack } = out;
    reportChangedUrls(plan0, plan, log);
    for (const n of out.result.notes) log(`! ${n}`);
    log('\nRead back from the environment:');
    log(renderChecks(readBack));
    const failed = readBack.filter((c) => c.status === 'fail').length;

    log('\nNotify URLs (set on the functions; WeChat Pay receives them with each order and refund):');
    for (const n of plan.notifyUrls) log(`  ${n.variable}=${n.url}`);
    if (plan.manualSteps.length > 0) {
      log('\nStill to do by hand (the API cannot):');
      for (const m of plan.manualSteps) log(`  → ${m}`);
    }
    const admins = (vars['ADMIN_OPENIDS'] ?? '').trim();
    if (!admins) {
      log(
        '\nBefore the first payment: open the mini-program (its 我的 page shows your openid), put it in ADMIN_OPENIDS and run npm run deploy again.',
      );
    }
    log(failed === 0 ? '\ndeployed.' : `\ndeployed with ${failed} problem(s) in the read-back above.`);
    return failed === 0 ? 0 : 1;
  } catch (e) {
    if (e instanceof DeployError) {
      console.error(e.message);
      console.error(
        'Nothing after that step was changed; fix the cause and run npm run deploy again: it picks up where it stopped.',
      );
      return 1;
    }
    throw e;
  } finally {
    uninstall();
  }
}

function reportChangedUrls(before: Plan, after: Plan, log: (s: string) => void): void {
  for (const n of after.notifyUrls) {
    const was = before.notifyUrls.find((b) => b.variable === n.variable)?.url;
    if (n.source === 'derived' && was !== n.url) {
      log(
        `${n.variable} is ${n.url} (the environment's own domain; the configuration alone suggested ${was})`,
      );
    }
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
