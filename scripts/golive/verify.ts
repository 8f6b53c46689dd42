/**
 * Reads a deployed environment back and compares it with the plan: each function's status,
 * runtime, timeout, variables, build and timer; each notify route; the collections and
 * indexes. Deploy runs it after every deploy; `npm run doctor -- --deployed` runs it too and
 * then calls the deployed whoami and GETs the notify URLs (what only the live path proves).
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { findRuntime, isEndOfLife } from '../runtimes';
import type { Check } from './checks';
import { buildOf, type FunctionDetail, type HttpRouteInfo, type ManagerApi } from './executor';
import type { Plan, Step } from './plan';

const ok = (name: string, detail: string): Check => ({ status: 'ok', name, detail });
const warn = (name: string, detail: string, fix: string): Check => ({ status: 'warn', name, detail, fix });
const fail = (name: string, detail: string, fix: string): Check => ({ status: 'fail', name, detail, fix });

const stepsOf = <K extends Step['kind']>(plan: Plan, kind: K) =>
  plan.steps.filter((s): s is Extract<Step, { kind: K }> => s.kind === kind);

const errorCode = (e: unknown) => String((e as { code?: unknown })?.code ?? '');
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

function reasons(info: FunctionDetail): string {
  return (
    (info.StatusReasons ?? []).map((r) => `[${r.ErrorCode}] ${r.ErrorMessage}`).join('; ') ||
    info.StatusDesc ||
    ''
  );
}

/** One line per function: Active, its runtime, and whether what runs is what was planned. */
export async function verifyFunctions(plan: Plan, m: ManagerApi, now: number): Promise<Check[]> {
  const out: Check[] = [];
  for (const up of stepsOf(plan, 'function.upload')) {
    const name = `function ${up.function}`;
    const cfg = stepsOf(plan, 'function.config').find((s) => s.function === up.function);
    const triggers = stepsOf(plan, 'function.trigger').filter((s) => s.function === up.function);
    let info: FunctionDetail;
    try {
      info = await m.functions.getFunctionDetail(up.function);
    } catch (e) {
      out.push(
        errorCode(e).startsWith('ResourceNotFound')
          ? fail(name, 'missing', 'run npm run deploy')
          : fail(name, `cannot be read: ${message(e)}`, 'check the API key and region'),
      );
      continue;
    }
    const runtime = info.Runtime ?? '(unknown runtime)';
    const facts = [`${info.Status}`, runtime];
    const problems: string[] = [];
    const warnings: string[] = [];
    if (info.Status !== 'Active') problems.push(`${info.Status}: ${reasons(info)}`);
    const known = info.Runtime ? findRuntime(info.Runtime) : undefined;
    if (known && isEndOfLife(known, new Date(now))) {
      warnings.push(`${runtime} is end-of-life since ${known.endOfLife}`);
    }
    if (info.Runtime && info.Runtime !== up.runtime) {
      warnings.push(
        `not ${up.runtime} (functions created in WeChat DevTools default to Node 16; SCF cannot change a runtime: delete it and deploy again)`,
      );
    }
    if (cfg) {
      if (info.Timeout !== cfg.timeout) problems.push(`timeout ${info.Timeout}s, planned ${cfg.timeout}s`);
      const actual = Object.fromEntries(
        (info.Environment?.Variables ?? []).map((v) => [v.Key ?? '', v.Value ?? '']),
      );
      const missing = Object.keys(cfg.envVariables).filter((k) => !(k in actual));
      const differ = Object.keys(cfg.envVariables).filter(
        (k) => k in actual && actual[k] !== cfg.envVariables[k],
      );
      const extra = Object.keys(actual).filter((k) => !(k in cfg.envVariables));
      if (missing.length) problems.push(`variables missing: ${missing.join(', ')}`);
      if (differ.length) problems.push(`variables differ from the configuration: ${differ.join(', ')}`);
      if (extra.length) warnings.push(`variables not in the configuration: ${extra.join(', ')}`);
      if (!missing.length && !differ.length)
        facts.push(
          `timeout ${info.Timeout}s`,
          `${Object.keys(cfg.envVariables).length} variables as planned`,
        );
    }
    const build = buildOf(info.Description);
    if (build !== up.codeHash)
      problems.push(`runs build ${build ?? '(unknown)'}, this build is ${up.codeHash}`);
    else facts.push(`build ${build}`);
    for (const t of triggers) {
      const found = (info.Triggers ?? []).find((x) => x.TriggerName === t.trigger.name);
      if (!found) problems.push(`timer ${t.trigger.name} missing`);
      else if (found.TriggerDesc !== t.trigger.config)
        problems.push(`timer ${t.trigger.name} is "${found.TriggerDesc}", planned "${t.trigger.config}"`);
      else facts.push(`timer ${t.trigger.name} "${found.TriggerDesc}"`);
    }
    const detail = [...facts, ...warnings, ...problems].join(', ');
    if (problems.length)
      out.push(fail(name, detail, 'run npm run deploy again; see docs/GOING_LIVE.md "What a failure means"'));
    else if (warnings.length)
      out.push(
        warn(
          name,
          detail,
          `create functions on ${up.runtime}: delete the old one in the console, then deploy`,
        ),
      );
    else out.push(ok(name, detail));
  }
  return out;
}

export async function verifyRoutes(plan: Plan, m: ManagerApi): Promise<Check[]> {
  const out: Check[] = [];
  for (const s of stepsOf(plan, 'access.route')) {
    const name = `route ${s.path}`;
    let route: HttpRouteInfo | undefined;
    let upstream: string | undefined;
    try {
      if (s.api === 'current') {
        const res = await m.env.describeHttpServiceRoute({
          EnvId: plan.envId,
          Filters: [{ Name: 'Domain', Values: [s.domain] }],
        });
        route = (res.Domains ?? [])
          .find((d) => d.Domain === s.domain)
          ?.Routes?.find((r) => r.Path === s.path);
        upstream = route?.UpstreamResourceName;
      } else {
        const api = ((await m.access.getAccessList({ path: s.path })).APISet ?? []).find(
          (a) => a.Path === s.path,
        );
        if (api) route = { Path: api.Path, EnableAuth: api.EnableAuth ?? false, Enable: true };
        upstream = api?.Name;
      }
    } catch (e) {
      out.push(fail(name, `cannot be read: ${message(e)}`, 'check the API key'));
      continue;
    }
    const where = `https://${s.domain}${s.path}`;
    if (!route) out.push(fail(name, `${where} has no route`, 'run npm run deploy'));
    else if (upstream !== s.function)
      out.push(
        fail(
          name,
          `${where} routes to ${upstream}, not ${s.function}`,
          'remove that route in the console, then deploy',
        ),
      );
    else if (route.EnableAuth)
      out.push(
        fail(
          name,
          `${where} → ${upstream} has authentication on: WeChat Pay's notifies are refused`,
          'run npm run deploy (it turns it off)',
        ),
      );
    else if (route.Enable === false)
      out.push(fail(name, `${where} → ${upstream} is disabled`, 'run npm run deploy'));
    else out.push(ok(name, `${where} → ${upstream}, authentication off`));
  }
  return out;
}

export async function verifyDatabase(plan: Plan, m: ManagerApi): Promise<Check[]> {
  const out: Check[] = [];
  for (const c of stepsOf(plan, 'database.collection')) {
    const wanted = stepsOf(plan, 'database.index').filter((i) => i.index.collection === c.collection);
    try {
      const { Indexes } = await m.database.describeCollection(c.collection);
      const missing = wanted.filter(
        (w) =>
          !(Indexes ?? []).some(
            (i) =>
              i.Name === w.index.name &&
              JSON.stringify((i.Keys ?? []).map((k) => [k.Name, String(k.Direction)])) ===
                JSON.stringify(w.index.keys.map((k) => [k.field, String(k.direction)])),
          ),
      );
      if (missing.length)
        out.push(
          fail(
            `collection ${c.collection}`,
            `index ${missing.map((w) => w.index.name).join(', ')} missing or different`,
            'run npm run deploy',
          ),
        );
      else
        out.push(
          ok(
            `collection ${c.collection}`,
            wanted.length ? `indexes ${wanted.map((w) => w.index.name).join(', ')}` : 'present',
          ),
        );
    } catch (e) {
      out.push(
        fail(`collection ${c.collection}`, `missing or unreadable: ${message(e)}`, 'run npm run deploy'),
      );
    }
  }
  const rules = stepsOf(plan, 'rules.database').length + stepsOf(plan, 'rules.functions').length;
  out.push(ok('security rules', `${rules} applied by deploy (the API gives no read-back of custom rules)`));
  return out;
}

export async function verifyDeployment(
  plan: Plan,
  m: ManagerApi,
  opts: { now?: number } = {},
): Promise<Check[]> {
  const now = opts.now ?? Date.now();
  return [
    ...(await verifyFunctions(plan, m, now)),
    ...(await verifyRoutes(plan, m)),
    ...(await verifyDatabase(plan, m)),
  ];
}

/**
 * whoami called through the management API (SCF Invoke): no WeChat user, so a function that
 * starts answers UNAUTHENTICATED; CONFIG_INVALID names what its variables lack.
 */
export async function checkWhoami(m: ManagerApi): Promise<Check> {
  const name = 'deployed whoami';
  let res: { RetMsg?: string; ErrMsg?: string };
  try {
    res = await m.functions.invokeFunction('whoami', {});
  } catch (e) {
    return fail(
      name,
      `cannot be invoked: ${message(e)}`,
      'run npm run deploy; check the function in the console',
    );
  }
  if (res.ErrMsg)
    return fail(name, `crashed: ${res.ErrMsg.slice(0, 300)}`, 'read its log in the console (云函数 → 日志)');
  let ret: { ok?: boolean; error?: { code?: string; message?: string } };
  try {
    ret = JSON.parse(res.RetMsg ?? 'null');
  } catch {
    return fail(name, `answered ${String(res.RetMsg).slice(0, 200)}`, 'deploy this build again');
  }
  const code = ret?.error?.code;
  if (code === 'UNAUTHENTICATED')
    return ok(
      name,
      'starts with its configuration (answers UNAUTHENTICATED without a WeChat user, as it should)',
    );
  if (code === 'CONFIG_INVALID')
    return fail(
      name,
      `refuses its configuration: ${ret.error?.message ?? ''}`,
      'fix deploy.env, run doctor, deploy',
    );
  return warn(name, `answered ${JSON.stringify(ret).slice(0, 200)}`, 'check the function log');
}

/** GET `url`; `via` sends it to another address with the URL's Host (the sandbox gateway). */
export type HttpProbe = (
  url: string,
) => Promise<{ status: number; body: string; headers: Record<string, string> }>;

export function httpProbe(via?: string): HttpProbe {
  return (url) =>
    new Promise((resolve, reject) => {
      const u = new URL(url);
      const target = via ? new URL(via) : u;
      const lib = target.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = lib(
        {
          host: target.hostname,
          port: target.port || (target.protocol === 'https:' ? 443 : 80),
          path: u.pathname + u.search,
          method: 'GET',
          headers: { host: u.host, 'user-agent': 'wxpay-cloud-shop doctor' },
          timeout: 10_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString('utf8').slice(0, 2000),
              headers: Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, String(v)])),
            }),
          );
        },
      );
      req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
      req.on('error', reject);
      req.end();
    });
}

/**
 * A GET on each notify URL. The notify functions answer a GET with 405 and an XML FAIL ("POST
 * only"): that proves DNS, TLS, the route, authentication off and the function running.
 */
export async function checkNotifyRoutes(plan: Plan, probe: HttpProbe): Promise<Check[]> {
  const out: Check[] = [];
  for (const n of plan.notifyUrls) {
    const name = `GET ${n.variable}`;
    try {
      const r = await probe(n.url);
      if (r.status === 405 && r.body.includes('<return_code>'))
        out.push(ok(name, `${n.url} reaches ${n.function} (405 POST only, as expected)`));
      else if (r.status === 404)
        out.push(fail(name, `${n.url} answers 404: no route for ${n.path}`, 'run npm run deploy'));
      else if (r.status === 401 || r.status === 403)
        out.push(
          fail(
            name,
            `${n.url} answers ${r.status}: authentication is on for the route`,
            'run npm run deploy (it turns authentication off)',
          ),
        );
      else
        out.push(
          fail(
            name,
            `${n.url} answers ${r.status} ${r.body.slice(0, 160)}`,
            `check that ${n.function} is Active and its log`,
          ),
        );
    } catch (e) {
      out.push(
        fail(
          name,
          `${n.url} cannot be reached: ${message(e)}`,
          'check the domain (DNS, certificate) and the route',
        ),
      );
    }
  }
  return out;
}
