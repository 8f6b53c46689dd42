/**
 * Runs a deploy plan against CloudBase through @cloudbase/manager-node, reading before it
 * writes so that a second deploy changes only what differs and a deploy stopped half-way
 * finishes on the next run:
 *
 * - a function is read first (GetFunction): one left CreateFailed by an earlier run is deleted
 *   and created again; its configuration is updated only when it differs; its code only when
 *   the deployed build (kept in its description) is not this build, or the last update failed;
 * - every code upload is followed by a status check, because manager-node's wait accepts
 *   UpdateFailed (a failed 云端安装依赖) as done;
 * - a timer whose schedule changed is updated in place (UpdateTrigger), never deleted first,
 *   so reconcile never misses a run; only "does not exist" is ignored when deleting;
 * - an index whose keys changed is dropped and created again;
 * - a notify route with authentication on is switched off; the current HTTP access service is
 *   used, HTTP 访问服务（旧） only where the environment lacks it (EnvironmentFacts.httpApi).
 *
 * `ManagerApi` is the part of manager-node's CloudBase object used here, so tsc checks the
 * real object against it in deploy.ts; tests run the real manager-node against the fake.
 */
import type { EnvironmentFacts, IndexSpec, Plan, Step } from './plan';

type Fn = {
  name: string;
  runtime?: string;
  handler?: string;
  installDependency?: boolean;
  isWaitInstall?: boolean;
  ignore?: string | string[];
  timeout?: number;
  description?: string;
  envVariables?: Record<string, string | number | boolean>;
};

export interface FunctionDetail {
  Status?: string;
  StatusDesc?: string;
  StatusReasons?: { ErrorCode?: string; ErrorMessage?: string }[];
  Runtime?: string;
  Timeout?: number;
  Description?: string;
  Environment?: { Variables?: { Key?: string; Value?: string }[] };
  Triggers?: { TriggerName?: string; Type?: string; TriggerDesc?: string }[];
}

/** A route as CreateHTTPServiceRoute / ModifyHTTPServiceRoute take it. */
export interface RouteParam {
  Path: string;
  UpstreamResourceType?: 'SCF';
  UpstreamResourceName?: string;
  EnableAuth?: boolean;
  EnableSafeDomain?: boolean;
  EnablePathTransmission?: boolean;
  Enable?: boolean;
}

export interface HttpRouteInfo {
  Path?: string;
  UpstreamResourceType?: string;
  UpstreamResourceName?: string;
  EnableAuth?: boolean;
  EnableSafeDomain?: boolean;
  Enable?: boolean;
}

export interface ManagerApi {
  functions: {
    getFunctionDetail(name: string, codeSecret?: string): Promise<FunctionDetail>;
    createFunction(p: { func: Fn; functionPath?: string; force?: boolean }): Promise<unknown>;
    updateFunctionCode(p: { func: Fn; functionPath?: string }): Promise<unknown>;
    updateFunctionConfig(func: Fn): Promise<unknown>;
    deleteFunction(name: string): Promise<unknown>;
    createFunctionTriggers(
      name: string,
      triggers?: { name: string; type: string; config: string }[],
    ): Promise<unknown>;
    invokeFunction(
      name: string,
      params?: Record<string, unknown>,
    ): Promise<{ RetMsg?: string; ErrMsg?: string }>;
  };
  commonService(
    service?: string,
    version?: string,
  ): { call(o: { Action: string; Param?: Record<string, unknown> }): Promise<unknown> };
  database: {
    createCollectionIfNotExists(name: string): Promise<unknown>;
    describeCollection(name: string): Promise<{
      Indexes?: { Name?: string; Keys?: { Name?: string; Direction?: string }[]; Unique?: boolean }[];
    }>;
    updateCollection(
      collection: string,
      info: {
        CreateIndexes?: {
          IndexName: string;
          MgoKeySchema: { MgoIndexKeys: { Name: string; Direction: string }[]; MgoIsUnique: boolean };
        }[];
        DropIndexes?: { IndexName: string }[];
      },
    ): Promise<unknown>;
  };
  access: {
    getAccessList(o?: { path?: string; name?: string }): Promise<{
      APISet?: { APIId?: string; Path?: string; Name?: string; EnableAuth?: boolean }[] | null;
    }>;
    createAccess(o: { path: string; name: string; type?: 1 | 2; auth?: boolean }): Promise<unknown>;
    switchPathAuth(o: { apiIds: string[]; auth: boolean }): Promise<unknown>;
    getDomainList(): Promise<{ DefaultDomain?: string | null }>;
  };
  env: {
    getEnvInfo(): Promise<{
      EnvInfo: { EnvId?: string; Region?: string; Functions?: { Namespace?: string }[] };
    }>;
    describeHttpServiceRoute(p: {
      EnvId: string;
      Filters?: { Name?: 'Domain' | 'Path' | 'DomainType' | 'UpstreamResourceType'; Values?: string[] }[];
    }): Promise<{ Domains?: { Domain?: string; IsDefault?: boolean; Routes?: HttpRouteInfo[] }[] }>;
    createHttpServiceRoute(p: {
      EnvId: string;
      Domain: { Domain: string; Routes?: RouteParam[] };
    }): Promise<unknown>;
    modifyHttpServiceRoute(p: {
      EnvId: string;
      Domain: { Domain: string; Routes?: RouteParam[] };
    }): Promise<unknown>;
  };
  permission: {
    modifyResourcePermission(o: {
      resourceType: 'function' | 'collection';
      resource?: string;
      permission: 'CUSTOM';
      securityRule?: string;
    }): Promise<unknown>;
  };
}

export interface ExecuteOptions {
  log: (line: string) => void;
  /** Functions deployed at once (each waits on its own status); default 4. */
  concurrency?: number;
  /** How often a function's status is read while it settles (ms); default 1000. */
  pollMs?: number;
  /** How long a function may stay Creating/Updating (ms); default 5 minutes, manager-node's own. */
  settleTimeoutMs?: number;
}

export interface ExecuteResult {
  notifyUrls: { variable: string; url: string }[];
  /** Non-fatal findings (a function that keeps an older runtime…). */
  notes: string[];
}

const TRANSITIONAL = new Set(['Creating', 'Updating', 'Publishing', 'Deleting']);
/** Where the deployed build is recorded: the function's description (visible in the console). */
export const BUILD_TAG = 'wxpay-cloud-shop build ';

export function buildOf(description: string | undefined): string | undefined {
  const i = description?.indexOf(BUILD_TAG) ?? -1;
  return i >= 0 ? description!.slice(i + BUILD_TAG.length).split(/\s/)[0] : undefined;
}

function errorCode(e: unknown): string {
  return (e as { code?: unknown })?.code ? String((e as { code: unknown }).code) : '';
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function reasons(info: FunctionDetail): string {
  const r = (info.StatusReasons ?? []).map((x) => `[${x.ErrorCode}] ${x.ErrorMessage}`).join('; ');
  return r || info.StatusDesc || 'no reason given';
}

export class DeployError extends Error {}

/** Finds the environment and its region: CLOUDBASE_REGION if set, else each CloudBase region in turn. */
export const CLOUDBASE_REGIONS = ['ap-shanghai', 'ap-guangzhou', 'ap-singapore', 'ap-beijing'];

export async function discoverEnvironment(
  envId: string,
  configuredRegion: string | undefined,
  managerFor: (region: string) => ManagerApi,
): Promise<{ region: string; namespace: string; manager: ManagerApi }> {
  const candidates = configuredRegion ? [configuredRegion] : CLOUDBASE_REGIONS;
  const misses: string[] = [];
  for (const region of candidates) {
    const m = managerFor(region);
    let info: Awaited<ReturnType<ManagerApi['env']['getEnvInfo']>>['EnvInfo'];
    try {
      info = (await m.env.getEnvInfo()).EnvInfo;
    } catch (e) {
      const code = errorCode(e);
      // Only "no such environment here" moves on; a refused key or a throttle is an answer.
      if (code.startsWith('ResourceNotFound') || /not found|不存在/i.test(message(e))) {
        misses.push(`${region}: ${message(e)}`);
        continue;
      }
      throw new DeployError(`DescribeEnvInfo for ${envId} in ${region} failed: ${message(e)}`);
    }
    const actual = info.Region || region;
    if (configuredRegion && actual !== configuredRegion) {
      throw new DeployError(
        `CLOUDBASE_REGION is ${configuredRegion}, but environment ${envId} is in ${actual}`,
      );
    }
    const namespace = info.Functions?.[0]?.Namespace || envId;
    return { region: actual, namespace, manager: actual === region ? m : managerFor(actual) };
  }
  throw new DeployError(
    `environment ${envId} was not found in ${candidates.join(', ')} (${misses.join('; ')}): check CLOUDBASE_ENV_ID, CLOUDBASE_REGION and that the API key's account owns it`,
  );
}

/** Which HTTP access API the environment has, and its default domain. */
export async function discoverHttpAccess(
  m: ManagerApi,
  envId: string,
): Promise<{ httpApi: EnvironmentFacts['httpApi']; defaultDomain?: string; note: string }> {
  try {
    const res = await m.env.describeHttpServiceRoute({ EnvId: envId });
    const d = (res.Domains ?? []).find((x) => x.IsDefault)?.Domain;
    return {
      httpApi: 'current',
      ...(d ? { defaultDomain: d } : {}),
      note: `HTTP 访问服务 (DescribeHTTPServiceRoute), default domain ${d ?? 'not reported'}`,
    };
  } catch (e) {
    // Documented fallback: environments without the current service keep HTTP 访问服务（旧）.
    const code = errorCode(e);
    if (
      !/^(FailedOperation|UnsupportedOperation|ResourceNotFound|InvalidAction|ResourceUnavailable)/.test(code)
    ) {
      throw new DeployError(`DescribeHTTPServiceRoute failed: ${message(e)}`);
    }
    let legacyDomain: string | undefined;
    try {
      legacyDomain = (await m.access.getDomainList()).DefaultDomain ?? undefined;
    } catch {
      legacyDomain = undefined;
    }
    return {
      httpApi: 'legacy',
      ...(legacyDomain ? { defaultDomain: legacyDomain } : {}),
      note: `HTTP 访问服务（旧）: the current service answered ${code || message(e)}; default domain ${legacyDomain ?? 'not reported'}`,
    };
  }
}

/** Runs `run` over `items`, `limit` at a time; after a failure no new item starts. */
async function pool<T>(items: T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  const errors: unknown[] = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length && errors.length === 0) {
      const item = items[next++]!;
      try {
        await run(item);
      } catch (e) {
        errors.push(e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (errors.length > 0) throw errors[0];
}

const sameIndex = (
  actual: { Keys?: { Name?: string; Direction?: string }[]; Unique?: boolean },
  wanted: IndexSpec,
): boolean =>
  (actual.Unique ?? false) === wanted.unique &&
  JSON.stringify((actual.Keys ?? []).map((k) => [k.Name, String(k.Direction)])) ===
    JSON.stringify(wanted.keys.map((k) => [k.field, String(k.direction)]));

function sameVariables(actual: FunctionDetail['Environment'], wanted: Record<string, string>): boolean {
  const a = Object.fromEntries((actual?.Variables ?? []).map((v) => [v.Key ?? '', v.Value ?? '']));
  const keys = Object.keys(wanted);
  return keys.length === Object.keys(a).length && keys.every((k) => a[k] === wanted[k]);
}

export async function executePlan(plan: Plan, m: ManagerApi, opts: ExecuteOptions): Promise<ExecuteResult> {
  if (plan.problems.length > 0)
    throw new Error(`the plan has ${plan.problems.length} problem(s); fix them first`);
  const pollMs = opts.pollMs ?? 1000;
  const settleTimeoutMs = opts.settleTimeoutMs ?? 300_000;
  const notes: string[] = [];
  const total = plan.steps.length;
  const index = new Map(plan.steps.map((s, i) => [s, i + 1]));
  const done = (s: Step, outcome: string) =>
    opts.log(`✔ ${index.get(s)}/${total} ${s.kind} ${stepSubject(s)}: ${outcome}`);
  const fail = (s: Step, e: unknown) =>
    new DeployError(`✖ ${index.get(s)}/${total} ${s.kind} ${stepSubject(s)}: ${message(e)}`);

  const scf = m.commonService('scf', '2018-04-16');
  const read = async (name: string): Promise<FunctionDetail | undefined> => {
    try {
      return await m.functions.getFunctionDetail(name);
    } catch (e) {
      if (errorCode(e) === 'ResourceNotFound.Function' || errorCode(e) === 'ResourceNotFound')
        return undefined;
      throw e;
    }
  };
  const settled = async (name: string): Promise<FunctionDetail> => {
    const deadline = Date.now() + settleTimeoutMs;
    for (;;) {
      const info = await read(name);
      if (!info) throw new Error(`${name} disappeared while deploying`);
      if (!TRANSITIONAL.has(info.Status ?? '')) return info;
      if (Date.now() > deadline)
        throw new Error(`${name} stayed ${info.Status} for ${settleTimeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  };

  const byFunction = new Map<string, Step[]>();
  const rest: Step[] = [];
  for (const s of plan.steps) {
    if (s.kind === 'function.config' || s.kind === 'function.upload' || s.kind === 'function.trigger') {
      byFunction.set(s.function, [...(byFunction.get(s.function) ?? []), s]);
    } else rest.push(s);
  }

  const deployFunction = async (steps: Step[]) => {
    const cfg = steps.find(
      (s): s is Extract<Step, { kind: 'function.config' }> => s.kind === 'function.config',
    )!;
    const up = steps.find(
      (s): s is Extract<Step, { kind: 'function.upload' }> => s.kind === 'function.upload',
    )!;
    const triggers = steps.filter(
      (s): s is Extract<Step, { kind: 'function.trigger' }> => s.kind === 'function.trigger',
    );
    const name = up.function;
    const tag = `${BUILD_TAG}${up.codeHash}`;
    const func: Fn = {
      name,
      handler: up.handler,
      installDependency: up.installDependency,
      // Wait for 云端安装依赖 so a failed install fails the deploy, not a payment.
      isWaitInstall: true,
      ignore: ['node_modules'],
    };

    let info: FunctionDetail | undefined;
    try {
      info = await read(name);
      if (info && TRANSITIONAL.has(info.Status ?? '')) info = await settled(name);
      if (info?.Status === 'CreateFailed') {
        // A failed first install leaves a function that cannot be updated, only replaced.
        opts.log(
          `  ${name} is CreateFailed from an earlier deploy (${reasons(info)}): deleting it to create it again`,
        );
        await m.functions.deleteFunction(name);
        info = undefined;
      }
    } catch (e) {
      throw fail(cfg, e);
    }

    if (!info) {
      try {
        await m.functions.createFunction({
          func: {
            ...func,
            runtime: up.runtime,
            timeout: cfg.timeout,
            envVariables: cfg.envVariables,
            description: tag,
          },
          functionPath: up.dir,
          force: false,
        });
        info = await settled(name);
      } catch (e) {
        throw fail(up, e);
      }
      if (info.Status !== 'Active')
        throw fail(up, `${name} is ${info.Status} after creation: ${reasons(info)}`);
      done(
        cfg,
        `applied with the code (new function): timeout ${cfg.timeout}s, ${Object.keys(cfg.envVariables).length} variables`,
      );
      done(up, `created on ${up.runtime}`);
    } else {
      if (info.Runtime && info.Runtime !== up.runtime) {
        notes.push(
          `${name} runs on ${info.Runtime}, not ${up.runtime}: SCF cannot change a function's runtime; delete it in the console and deploy again to move it`,
        );
      }
      try {
        if (info.Timeout === cfg.timeout && sameVariables(info.Environment, cfg.envVariables))
          done(cfg, 'unchanged');
        else {
          await m.functions.updateFunctionConfig({
            name,
            timeout: cfg.timeout,
            envVariables: cfg.envVariables,
          });
          info = await settled(name);
          done(cfg, `updated (timeout ${cfg.timeout}s, ${Object.keys(cfg.envVariables).length} variables)`);
        }
      } catch (e) {
        throw fail(cfg, e);
      }
      try {
        const failedBefore = info.Status === 'UpdateFailed';
        if (!failedBefore && buildOf(info.Description) === up.codeHash)
          done(up, `unchanged (build ${up.codeHash})`);
        else {
          await m.functions.updateFunctionCode({ func, functionPath: up.dir });
          info = await settled(name);
          if (info.Status !== 'Active') {
            throw new Error(
              `the code was uploaded but ${name} is ${info.Status}: ${reasons(info)}${up.installDependency ? ' (云端安装依赖 failed: the function keeps running its previous code)' : ''}`,
            );
          }
          // Recorded only once the new code is Active, so an interrupted run uploads again.
          await m.functions.updateFunctionConfig({ name, description: tag });
          info = await settled(name);
          done(
            up,
            `code updated${failedBefore ? ' (the last update had failed)' : ''} to build ${up.codeHash}`,
          );
        }
      } catch (e) {
        throw fail(up, e);
      }
    }

    for (const t of triggers) {
      try {
        const existing = (info.Triggers ?? []).find(
          (x) => x.TriggerName === t.trigger.name && x.Type === 'timer',
        );
        if (existing && existing.TriggerDesc === t.trigger.config) done(t, 'unchanged');
        else if (existing) {
          // In place: deleting first would leave reconcile without a timer until the create.
          await scf.call({
            Action: 'UpdateTrigger',
            Param: {
              FunctionName: name,
              Namespace: plan.namespace,
              TriggerName: t.trigger.name,
              Type: 'timer',
              TriggerDesc: t.trigger.config,
            },
          });
          done(t, `schedule changed in place from "${existing.TriggerDesc}"`);
        } else {
          await m.functions.createFunctionTriggers(name, [t.trigger]);
          done(t, 'created');
        }
      } catch (e) {
        throw fail(t, e);
      }
    }
    // Timers config.json no longer declares, removed after the wanted ones exist.
    const wanted = new Set(triggers.map((t) => t.trigger.name));
    for (const stale of (info.Triggers ?? []).filter(
      (x) => x.Type === 'timer' && !wanted.has(x.TriggerName ?? ''),
    )) {
      try {
        await scf.call({
          Action: 'DeleteTrigger',
          Param: {
            FunctionName: name,
            Namespace: plan.namespace,
            TriggerName: stale.TriggerName,
            Type: 'timer',
          },
        });
        opts.log(`  ${name}: removed timer ${stale.TriggerName}, which config.json no longer declares`);
      } catch (e) {
        if (!errorCode(e).startsWith('ResourceNotFound')) {
          throw new DeployError(`✖ ${name}: removing timer ${stale.TriggerName} failed: ${message(e)}`);
        }
      }
    }
  };

  await pool([...byFunction.values()], opts.concurrency ?? 4, deployFunction);

  const run: {
    [K in Exclude<Step['kind'], `function.${string}`>]: (s: Extract<Step, { kind: K }>) => Promise<string>;
  } = {
    'database.collection': async (s) => {
      const r = (await m.database.createCollectionIfNotExists(s.collection)) as { IsCreated?: boolean };
      return r?.IsCreated ? 'created' : 'present';
    },
    'database.index': async (s) => {
      const { index } = s;
      const { Indexes } = await m.database.describeCollection(index.collection);
      const existing = (Indexes ?? []).find((i) => i.Name === index.name);
      if (existing && sameIndex(existing, index)) return 'unchanged';
      const create = {
        IndexName: index.name,
        MgoKeySchema: {
          MgoIndexKeys: index.keys.map((k) => ({ Name: k.field, Direction: String(k.direction) })),
          MgoIsUnique: index.unique,
        },
      };
      if (existing) {
        // Same name, other keys: drop first (a create with a taken name is refused).
        await m.database.updateCollection(index.collection, { DropIndexes: [{ IndexName: index.name }] });
        await m.database.updateCollection(index.collection, { CreateIndexes: [create] });
        const was = (existing.Keys ?? []).map((k) => `${k.Name} ${k.Direction}`).join(', ');
        return `replaced: its keys were ${was}${existing.Unique ? ' (unique)' : ''}`;
      }
      await m.database.updateCollection(index.collection, { CreateIndexes: [create] });
      return 'created';
    },
    'access.route': async (s) => (s.api === 'current' ? routeCurrent(m, plan, s) : routeLegacy(m, s)),
    'rules.database': async (s) => {
      await m.permission.modifyResourcePermission({
        resourceType: 'collection',
        resource: s.collection,
        permission: 'CUSTOM',
        securityRule: JSON.stringify(s.rule),
      });
      return 'applied';
    },
    'rules.functions': async (s) => {
      await m.permission.modifyResourcePermission({
        resourceType: 'function',
        permission: 'CUSTOM',
        securityRule: JSON.stringify(s.rule),
      });
      return 'applied';
    },
  };
  for (const step of rest) {
    try {
      done(step, await (run[step.kind as keyof typeof run] as (s: Step) => Promise<string>)(step));
    } catch (e) {
      // manager-node errors carry the API's message and requestId, never our variables.
      throw fail(step, e);
    }
  }
  return { notifyUrls: plan.notifyUrls.map((n) => ({ variable: n.variable, url: n.url })), notes };
}

async function routeCurrent(
  m: ManagerApi,
  plan: Plan,
  s: Extract<Step, { kind: 'access.route' }>,
): Promise<string> {
  const res = await m.env.describeHttpServiceRoute({
    EnvId: plan.envId,
    Filters: [{ Name: 'Domain', Values: [s.domain] }],
  });
  const domain = (res.Domains ?? []).find((d) => d.Domain === s.domain);
  if (!domain) {
    throw new Error(
      `${s.domain} is not a domain of this environment's HTTP access service: bind it in the console (HTTP 访问服务 → 域名管理) or unset CLOUDBASE_HTTP_DOMAIN`,
    );
  }
  const wanted: RouteParam = { Path: s.path, EnableAuth: false, EnableSafeDomain: false, Enable: true };
  const same = (domain.Routes ?? []).find((r) => r.Path === s.path);
  if (!same) {
    await m.env.createHttpServiceRoute({
      EnvId: plan.envId,
      Domain: {
        Domain: s.domain,
        Routes: [
          {
            ...wanted,
            UpstreamResourceType: 'SCF',
            UpstreamResourceName: s.function,
            EnablePathTransmission: false,
          },
        ],
      },
    });
    return 'created';
  }
  if (same.UpstreamResourceType !== 'SCF' || same.UpstreamResourceName !== s.function) {
    throw new Error(
      `${s.path} on ${s.domain} already routes to ${same.UpstreamResourceType} ${same.UpstreamResourceName}; remove that route in the console (HTTP 访问服务 → 路由管理)`,
    );
  }
  const fixes = [
    same.EnableAuth ? 'authentication turned off (WeChat Pay cannot log in)' : '',
    same.Enable === false ? 'route enabled' : '',
    same.EnableSafeDomain ? 'safe-domain check turned off (server callbacks carry no Origin)' : '',
  ].filter(Boolean);
  if (fixes.length === 0) return 'already there';
  await m.env.modifyHttpServiceRoute({ EnvId: plan.envId, Domain: { Domain: s.domain, Routes: [wanted] } });
  return fixes.join(', ');
}

async function routeLegacy(m: ManagerApi, s: Extract<Step, { kind: 'access.route' }>): Promise<string> {
  // Documented: APISet "可能返回 null" on an environment with no routes.
  const same = ((await m.access.getAccessList({ path: s.path })).APISet ?? []).find((a) => a.Path === s.path);
  if (!same) {
    await m.access.createAccess({ path: s.path, name: s.function, type: 1, auth: s.auth });
    return 'created (HTTP 访问服务（旧）)';
  }
  if (same.Name !== s.function) {
    throw new Error(`HTTP access ${s.path} already routes to ${same.Name}; remove it in the console`);
  }
  if (!same.EnableAuth) return 'already there';
  if (!same.APIId)
    throw new Error(`HTTP access ${s.path} has authentication on and no APIId to switch it off`);
  await m.access.switchPathAuth({ apiIds: [same.APIId], auth: false });
  return 'authentication turned off (WeChat Pay cannot log in)';
}

export function stepSubject(s: Step): string {
  switch (s.kind) {
    case 'function.config':
    case 'function.upload':
    case 'function.trigger':
      return s.function;
    case 'database.collection':
    case 'rules.database':
      return s.collection;
    case 'database.index':
      return `${s.index.collection}.${s.index.name}`;
    case 'access.route':
      return `${s.path} → ${s.function}`;
    case 'rules.functions':
      return '';
  }
}
