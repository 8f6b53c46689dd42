/**
 * The deploy as one sequence, shared by `npm run deploy` (real or --sandbox) and the tests:
 * ask the environment (region, HTTP access), plan with what it said, execute, read back.
 */
import type { Check } from './checks';
import {
  DeployError,
  discoverEnvironment,
  discoverHttpAccess,
  type ExecuteResult,
  executePlan,
  type ManagerApi,
} from './executor';
import { type BuiltFunction, type Plan, planDeployment, type Rules, type Step } from './plan';
import { verifyDeployment } from './verify';

export interface DeployInput {
  functions: BuiltFunction[];
  vars: Record<string, string>;
  rules: Rules;
  sdkVersion: string;
  managerFor: (region: string) => ManagerApi;
  log: (line: string) => void;
  pollMs?: number;
  concurrency?: number;
  /** Tests: deploy only some of the plan's steps. */
  select?: (s: Step) => boolean;
}

export interface DeployOutcome {
  plan: Plan;
  manager: ManagerApi;
  result: ExecuteResult;
  readBack: Check[];
}

/** Throws DeployError on the first step that fails; nothing after it is changed. */
export async function deployEnvironment(input: DeployInput): Promise<DeployOutcome> {
  const envId = input.vars['CLOUDBASE_ENV_ID'] ?? '';
  const env = await discoverEnvironment(envId, input.vars['CLOUDBASE_REGION'], input.managerFor);
  input.log(`environment ${envId}: region ${env.region} (DescribeEnvInfo)`);
  const http = await discoverHttpAccess(env.manager, envId);
  input.log(`HTTP access: ${http.note}`);
  const plan = planDeployment({
    functions: input.functions,
    vars: input.vars,
    rules: input.rules,
    sdkVersion: input.sdkVersion,
    facts: {
      region: env.region,
      namespace: env.namespace,
      httpApi: http.httpApi,
      ...(http.defaultDomain ? { defaultDomain: http.defaultDomain } : {}),
    },
  });
  if (plan.problems.length > 0) {
    throw new DeployError(
      `with what the environment reports, the plan has problems:\n${plan.problems.map((p) => `  ✖ ${p}`).join('\n')}`,
    );
  }
  if (input.select) plan.steps = plan.steps.filter(input.select);
  const result = await executePlan(plan, env.manager, {
    log: input.log,
    ...(input.pollMs !== undefined ? { pollMs: input.pollMs } : {}),
    ...(input.concurrency !== undefined ? { concurrency: input.concurrency } : {}),
  });
  const readBack = await verifyDeployment(plan, env.manager);
  return { plan, manager: env.manager, result, readBack };
}
