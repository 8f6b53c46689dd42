/**
 * Runs a deploy plan against CloudBase through @cloudbase/manager-node. Thin on purpose:
 * one manager call (or one check-then-call, so a second deploy changes nothing it need not)
 * per step; every decision is in the planner.
 *
 * `ManagerApi` is the part of manager-node's CloudBase object used here, so tests drive the
 * executor with a recording fake and tsc checks the real object against it in deploy.ts.
 */
import type { Plan, Step } from './plan';

type Fn = {
  name: string;
  runtime?: string;
  handler?: string;
  installDependency?: boolean;
  isWaitInstall?: boolean;
  ignore?: string | string[];
  timeout?: number;
  envVariables?: Record<string, string | number | boolean>;
};

export interface ManagerApi {
  functions: {
    listFunctions(limit?: number, offset?: number): Promise<Record<string, string>[]>;
    createFunction(p: { func: Fn; functionPath?: string; force?: boolean }): Promise<unknown>;
    updateFunctionCode(p: { func: Fn; functionPath?: string }): Promise<unknown>;
    updateFunctionConfig(func: Fn): Promise<unknown>;
    deleteFunctionTrigger(name: string, triggerName: string): Promise<unknown>;
    createFunctionTriggers(
      name: string,
      triggers?: { name: string; type: string; config: string }[],
    ): Promise<unknown>;
  };
  database: {
    createCollectionIfNotExists(name: string): Promise<unknown>;
    checkIndexExists(collection: string, index: string): Promise<{ Exists: boolean }>;
    updateCollection(
      collection: string,
      info: {
        CreateIndexes?: {
          IndexName: string;
          MgoKeySchema: { MgoIndexKeys: { Name: string; Direction: string }[]; MgoIsUnique: boolean };
        }[];
      },
    ): Promise<unknown>;
  };
  access: {
    getAccessList(o?: { path?: string }): Promise<{ APISet: { Path: string; Name: string }[] }>;
    createAccess(o: { path: string; name: string; type?: 1 | 2; auth?: boolean }): Promise<unknown>;
    getDomainList(): Promise<{ DefaultDomain: string }>;
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

export interface ExecuteResult {
  notifyUrls: { variable: string; url: string; configured: string | undefined }[];
}

async function existingFunctions(m: ManagerApi): Promise<Set<string>> {
  const names = new Set<string>();
  for (let offset = 0; ; offset += 100) {
    const page = await m.functions.listFunctions(100, offset);
    for (const f of page) if (f['FunctionName']) names.add(f['FunctionName']);
    if (page.length < 100) return names;
  }
}

export async function executePlan(
  plan: Plan,
  m: ManagerApi,
  opts: { vars: Record<string, string>; log: (line: string) => void },
): Promise<ExecuteResult> {
  if (plan.problems.length > 0)
    throw new Error(`the plan has ${plan.problems.length} problem(s); fix them first`);
  const existing = await existingFunctions(m);
  // A new function is created with its configuration in one call, so it never runs a
  // moment without its variables.
  const pendingConfig = new Map<string, Extract<Step, { kind: 'function.config' }>>();

  const run: { [K in Step['kind']]: (s: Extract<Step, { kind: K }>) => Promise<string> } = {
    // Configuration before code for an existing function: the old code ignores a new
    // variable, but new code started without the variable it needs would refuse to start.
    'function.config': async (s) => {
      if (!existing.has(s.function)) {
        pendingConfig.set(s.function, s);
        return 'applied with the code (new function)';
      }
      await m.functions.updateFunctionConfig({
        name: s.function,
        timeout: s.timeout,
        envVariables: s.envVariables,
      });
      return 'updated';
    },
    'function.upload': async (s) => {
      const func: Fn = {
        name: s.function,
        handler: s.handler,
        installDependency: s.installDependency,
        // Wait for 云端安装依赖 so a failed wx-server-sdk install fails the deploy, not a payment.
        isWaitInstall: true,
        ignore: ['node_modules'],
      };
      if (existing.has(s.function)) {
        await m.functions.updateFunctionCode({ func, functionPath: s.dir });
        return 'code updated';
      }
      const cfg = pendingConfig.get(s.function);
      await m.functions.createFunction({
        func: { ...func, runtime: s.runtime, timeout: cfg?.timeout, envVariables: cfg?.envVariables },
        functionPath: s.dir,
        force: false,
      });
      existing.add(s.function);
      return 'created';
    },
    // CloudBase keeps one trigger per function and refuses to create one that exists:
    // replace it so a changed schedule takes effect.
    'function.trigger': async (s) => {
      await m.functions.deleteFunctionTrigger(s.function, s.trigger.name).catch(() => undefined);
      await m.functions.createFunctionTriggers(s.function, [s.trigger]);
      return 'set';
    },
    'database.collection': async (s) => {
      await m.database.createCollectionIfNotExists(s.collection);
      return 'present';
    },
    'database.index': async (s) => {
      const { index } = s;
      if ((await m.database.checkIndexExists(index.collection, index.name)).Exists) return 'already there';
      await m.database.updateCollection(index.collection, {
        CreateIndexes: [
          {
            IndexName: index.name,
            MgoKeySchema: {
              MgoIndexKeys: index.keys.map((k) => ({ Name: k.field, Direction: String(k.direction) })),
              MgoIsUnique: index.unique,
            },
          },
        ],
      });
      return 'created';
    },
    'access.route': async (s) => {
      const { APISet } = await m.access.getAccessList({ path: s.path });
      const same = APISet.find((a) => a.Path === s.path);
      if (same && same.Name === s.function) return 'already there';
      if (same)
        throw new Error(`HTTP access ${s.path} already routes to ${same.Name}; remove it in the console`);
      await m.access.createAccess({ path: s.path, name: s.function, type: 1, auth: s.auth });
      return 'created';
    },
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

  for (const [i, step] of plan.steps.entries()) {
    const label = `${i + 1}/${plan.steps.length} ${step.kind} ${stepSubject(step)}`;
    try {
      const outcome = await (run[step.kind] as (s: Step) => Promise<string>)(step);
      opts.log(`✔ ${label}: ${outcome}`);
    } catch (e) {
      // manager-node errors carry the API's message and requestId, never our variables.
      throw new Error(`✖ ${label}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  const domain = opts.vars['CLOUDBASE_HTTP_DOMAIN'] ?? (await m.access.getDomainList()).DefaultDomain;
  return {
    notifyUrls: plan.notifyUrls.map((n) => ({
      variable: n.variable,
      url: `https://${domain}${n.path}`,
      configured: opts.vars[n.variable],
    })),
  };
}

function stepSubject(s: Step): string {
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
