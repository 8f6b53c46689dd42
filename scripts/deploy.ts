/**
 * `npm run deploy [-- --env-file deploy.env] [--dry-run] [--json] [--out dir]`
 *
 * Builds every function and puts the shop on a CloudBase environment: functions (code,
 * timeout, variables, timer), collections and indexes, HTTP access for the notifies, the
 * security rules in deploy/, then prints the notify URLs. `--dry-run` prints the plan
 * (secrets masked) with no credentials and no network.
 *
 * Tooling: @cloudbase/manager-node (Tencent Cloud API keys), not miniprogram-ci. miniprogram-ci
 * only uploads function code and timer triggers; it cannot set environment variables or the
 * timeout, create HTTP access routes, collections or indexes, or apply security rules, which
 * would leave half of going live to clicks in the console. manager-node does all of it:
 * functions.createFunction/updateFunctionCode/updateFunctionConfig/createFunctionTriggers,
 * access.createAccess, database.createCollectionIfNotExists/updateCollection,
 * permission.modifyResourcePermission.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildFunctions, sdkVersion } from './build';
import { checkConfiguration, renderChecks } from './golive/checks';
import { type EnvFile, fromProcessEnv, readEnvFile } from './golive/envfile';
import { executePlan, type ManagerApi } from './golive/executor';
import { loadBuiltFunctions, loadRules, maskedPlan, planDeployment, renderPlan } from './golive/plan';

const root = resolve(fileURLToPath(import.meta.url), '../..');

interface Args {
  envFile: string | undefined;
  dryRun: boolean;
  json: boolean;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    envFile: undefined,
    dryRun: false,
    json: false,
    out: resolve(root, 'dist/cloudfunctions'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--dry-run') args.dryRun = true;
    else if (a === '--json') args.json = true;
    else if (a === '--env-file') args.envFile = argv[++i];
    else if (a === '--out') args.out = resolve(argv[++i] ?? '');
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run deploy -- [--env-file deploy.env] [--dry-run] [--json] [--out dir]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
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
  const { vars, problems: fileProblems } = loadVariables(args.envFile);
  const log = args.json ? () => undefined : (s: string) => console.log(s);

  const t0 = Date.now();
  await buildFunctions({ out: args.out });
  log(`built functions into ${args.out} in ${Date.now() - t0} ms`);

  const plan = planDeployment({
    functions: loadBuiltFunctions(args.out, resolve(root, 'cloudfunctions')),
    vars,
    rules: loadRules(resolve(root, 'deploy')),
    sdkVersion: sdkVersion(),
  });
  const checks = checkConfiguration(vars, { now: Date.now() });
  plan.problems.unshift(
    ...fileProblems,
    ...checks.filter((c) => c.status === 'fail').map((c) => `doctor: ${c.name}: ${c.detail}`),
  );

  if (args.json) {
    console.log(JSON.stringify({ ...maskedPlan(plan), checks }, null, 2));
    return plan.problems.length > 0 ? 1 : 0;
  }
  log(renderChecks(checks));
  log('');
  log(renderPlan(maskedPlan(plan)));
  if (args.dryRun || plan.problems.length > 0) return plan.problems.length > 0 ? 1 : 0;

  const secretId = vars['TENCENTCLOUD_SECRETID'];
  const secretKey = vars['TENCENTCLOUD_SECRETKEY'];
  if (!secretId || !secretKey) {
    console.error(
      'TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY are needed to deploy (see docs/GOING_LIVE.md)',
    );
    return 1;
  }
  // Loaded only here: --dry-run and the tests never need the Tencent Cloud SDK.
  const { default: CloudBase } = await import('@cloudbase/manager-node');
  const manager: ManagerApi = new CloudBase({ secretId, secretKey, envId: plan.envId, region: plan.region });
  log('');
  const result = await executePlan(plan, manager, { vars, log });
  log('\nEnter these in 商户平台 (支付配置 / 退款通知) and keep them in deploy.env:');
  let mismatch = false;
  for (const n of result.notifyUrls) {
    const same = n.configured === n.url;
    mismatch ||= !same;
    log(`  ${n.variable}=${n.url}${same ? '' : `   ✖ deploy.env has ${n.configured ?? 'nothing'}`}`);
  }
  if (mismatch) {
    log(
      'Set the variables above in deploy.env and run npm run deploy again: the functions send them to WeChat.',
    );
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
