/**
 * A stateful fake of the Tencent Cloud API actions a CloudBase deploy sends (tcb 2018-06-08,
 * scf 2018-04-16), answering as the real API does: every request's TC3-HMAC-SHA256 signature
 * is checked, every parameter against the documented names, types and limits (unknown names
 * are refused, as API 3.0 does), SCF calls only in the environment's region, and what was
 * created is kept. A function's Status moves Creating/Updating → Active, or to CreateFailed /
 * UpdateFailed when told to (a failed dependency install), after GetFunction looks at it.
 *
 * It is reached below @cloudbase/manager-node's signing (see hook.ts): manager-node builds and
 * signs the real request, the fake verifies and answers it. Tests and `--sandbox` can make an
 * action fail, leave a function failed, or change the state directly (an old route with
 * authentication on, an environment without the current HTTP access service…).
 */
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { unzipSync } from 'fflate';
import { findRuntime } from '../../scripts/runtimes';
import {
  defaultHttpDomain,
  type EnvSpec,
  type EnvState,
  type FakeState,
  type FunctionState,
  type FunctionStatus,
  type HttpRoute,
  newEnv,
  type StatusReason,
} from './model';
import { ApiError, type SignedRequest, verifyTc3 } from './signature';

export { ApiError } from './signature';

/** SCF's temporary COS buckets, as manager-node names them: `<prefix>tempcos-1253665819`. */
export const TEMP_COS_APPID = '1253665819';
export const TEMP_COS_PREFIX: Record<string, string> = {
  'ap-shanghai': 'sh',
  'ap-guangzhou': 'gz',
  'ap-beijing': 'bj',
  'ap-singapore': 'sg',
};

/** SCF: "所有环境变量的总大小不超过 4 KB". */
export const ENV_VARIABLES_LIMIT = 4096;

export interface RecordedCall {
  service: string;
  action: string;
  region: string;
  params: Record<string, unknown>;
  /** The error code answered, if any. */
  error?: string;
}

export interface Fault {
  action: string;
  code: string;
  message: string;
  /** How many matching calls fail (default 1). */
  times: number;
  match?: (params: Record<string, unknown>) => boolean;
}

export interface FakeOptions {
  credentials: { secretId: string; secretKey: string }[];
  envs?: EnvSpec[];
  /** Seconds since the epoch (signature expiry). */
  nowSeconds?: () => number;
  /** Persist the state here after every change (JSON, mode 0600: it holds function variables). */
  stateFile?: string;
  /** GetFunction looks a pending operation takes before it settles (default 0: the first look). */
  pollsToSettle?: number;
  /**
   * TCB documents "Region: 本接口不需要传递此参数", but the CloudBase CLI notes that a query in
   * another region reports no environment. Default false (any region answers); true models the latter.
   */
  tcbRegional?: boolean;
}

type Params = Record<string, unknown>;
type ParamType = 'string' | 'integer' | 'boolean' | 'array' | 'object';
interface Ctx {
  region: string;
  service: string;
}

const nowText = () => new Date().toISOString().replace('T', ' ').slice(0, 19);

function typeOf(v: unknown): ParamType | 'number' | 'null' {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v as ParamType;
}

/** API 3.0 parameter rules: required names, known names only, documented types. */
function checkParams(params: Params, types: Record<string, ParamType>, required: string[]): void {
  for (const k of required) {
    if (params[k] === undefined) {
      throw new ApiError('MissingParameter', `The request is missing a required parameter \`${k}\`.`);
    }
  }
  for (const [k, v] of Object.entries(params)) {
    const t = types[k];
    if (!t) throw new ApiError('UnknownParameter', `The parameter \`${k}\` is not recognized.`);
    if (typeOf(v) !== t) {
      throw new ApiError(
        'InvalidParameter',
        `The value type of parameter \`${k}\` is not valid: expected ${t}, got ${typeOf(v)}.`,
      );
    }
  }
}

const bad = (message: string) => new ApiError('InvalidParameterValue', message);

const FUNCTION_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]$/;
const HANDLER = /^[A-Za-z][A-Za-z0-9_-]*\.[A-Za-z][A-Za-z0-9_]*$/;
const VARIABLE_KEY = /^[A-Za-z][A-Za-z0-9_]*$/;
const TRIGGER_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,99}$/;
const TABLE_NAME = /^[A-Za-z0-9-][A-Za-z0-9_-]{0,95}$/;

function checkTimeout(v: unknown): void {
  if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 900)) {
    throw bad(`Timeout must be an integer from 1 to 900 seconds, got ${String(v)}.`);
  }
}

function checkMemory(v: unknown): void {
  if (v === undefined) return;
  const n = Number(v);
  if (!(n === 64 || (n >= 128 && n <= 3072 && n % 128 === 0))) {
    throw bad(`MemorySize must be 64 or 128 to 3072 in steps of 128, got ${String(v)}.`);
  }
}

function checkBooleanString(name: string, v: unknown): void {
  if (v !== undefined && v !== 'TRUE' && v !== 'FALSE') throw bad(`${name} must be TRUE or FALSE.`);
}

function checkVariables(env: unknown): { Key: string; Value: string }[] {
  if (env === undefined) return [];
  const vars = (env as { Variables?: unknown }).Variables;
  if (!Array.isArray(vars)) throw new ApiError('InvalidParameter', 'Environment.Variables must be an array.');
  let bytes = 0;
  const seen = new Set<string>();
  const out: { Key: string; Value: string }[] = [];
  for (const v of vars) {
    const { Key, Value } = (v ?? {}) as { Key?: unknown; Value?: unknown };
    if (typeof Key !== 'string' || !VARIABLE_KEY.test(Key)) {
      throw bad(
        `Environment variable name ${String(Key)} must start with a letter and hold letters, digits and _.`,
      );
    }
    if (typeof Value !== 'string' || Value === '') {
      throw bad(`Environment variable ${Key} must have a non-empty string value.`);
    }
    if (seen.has(Key)) throw bad(`Environment variable ${Key} is given twice.`);
    seen.add(Key);
    bytes += Buffer.byteLength(Key) + Buffer.byteLength(Value);
    out.push({ Key, Value });
  }
  if (bytes > ENV_VARIABLES_LIMIT) {
    throw new ApiError(
      'InvalidParameterValue.EnvironmentExceededLimit',
      `The environment variables take ${bytes} bytes; at most ${ENV_VARIABLES_LIMIT}.`,
    );
  }
  return out;
}

/** A CloudBase timer: 7 fields (sec min hour day month weekday year). */
function checkCron(desc: unknown): void {
  if (typeof desc !== 'string' || desc.trim().split(/\s+/).length !== 7) {
    throw bad(
      `TriggerDesc ${String(desc)} is not a 7-field cron expression (sec min hour day month weekday year).`,
    );
  }
  for (const field of desc.trim().split(/\s+/)) {
    if (!/^[0-9A-Za-z*?/,\-LW#]+$/.test(field)) throw bad(`TriggerDesc field "${field}" is not valid.`);
  }
}

export class FakeTencentCloud {
  state: FakeState;
  readonly calls: RecordedCall[] = [];
  private readonly secrets: Map<string, string>;
  private readonly faults: Fault[] = [];
  private readonly installFailures = new Map<string, { times: number; reason: string }>();
  private readonly opts: FakeOptions;

  constructor(opts: FakeOptions) {
    this.opts = opts;
    this.secrets = new Map(opts.credentials.map((c) => [c.secretId, c.secretKey]));
    const loaded =
      opts.stateFile && existsSync(opts.stateFile)
        ? (JSON.parse(readFileSync(opts.stateFile, 'utf8')) as FakeState)
        : undefined;
    this.state = loaded ?? { envs: {}, tempCos: {}, cosObjects: {}, counter: 0 };
    for (const spec of opts.envs ?? []) {
      if (!this.state.envs[spec.envId]) this.state.envs[spec.envId] = newEnv(spec);
    }
    this.save();
  }

  env(envId: string): EnvState {
    const e = this.state.envs[envId];
    if (!e) throw new Error(`fake: no environment ${envId}`);
    return e;
  }

  /** The next `times` calls of `action` (that `match`) answer this error. */
  failAction(
    action: string,
    error: { code: string; message?: string },
    opts: { times?: number; match?: (p: Params) => boolean } = {},
  ): void {
    this.faults.push({
      action,
      code: error.code,
      message: error.message ?? `${action} failed (${error.code})`,
      times: opts.times ?? 1,
      ...(opts.match ? { match: opts.match } : {}),
    });
  }

  /** The next code deployment of `fn` ends in CreateFailed/UpdateFailed: its npm install fails. */
  failInstall(fn: string, reason = 'npm ERR! code E404 npm ERR! 404 Not Found', times = 1): void {
    this.installFailures.set(fn, { times, reason });
  }

  /** Calls of one action (or all), for tests. */
  actions(filter?: string | ((c: RecordedCall) => boolean)): RecordedCall[] {
    if (filter === undefined) return this.calls;
    return this.calls.filter(typeof filter === 'string' ? (c) => c.action === filter : filter);
  }

  save(): void {
    const file = this.opts.stateFile;
    if (!file) return;
    mkdirSync(dirname(file), { recursive: true });
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.state), { mode: 0o600 });
    renameSync(tmp, file);
  }

  private id(prefix: string): string {
    this.state.counter += 1;
    return `${prefix}-${this.state.counter.toString(36).padStart(6, '0')}`;
  }

  /** One signed API request, as manager-node's fetch sends it; answers `{ Response: … }`. */
  handle(req: SignedRequest): { Response: Record<string, unknown> } {
    const RequestId = randomUUID();
    let action = req.headers['X-TC-Action'] ?? req.headers['x-tc-action'] ?? '?';
    let service = new URL(req.url).hostname.split('.')[0] ?? '?';
    let region = String(req.headers['X-TC-Region'] ?? req.headers['x-tc-region'] ?? '');
    let params: Params = {};
    try {
      const nowSeconds = this.opts.nowSeconds?.() ?? Math.floor(Date.now() / 1000);
      const v = verifyTc3(req, this.secrets, { nowSeconds });
      ({ action, service, region } = v);
      if (req.method.toUpperCase() !== 'POST') throw new ApiError('UnsupportedOperation', 'POST only here.');
      try {
        params = req.body ? (JSON.parse(req.body) as Params) : {};
      } catch {
        throw new ApiError('InvalidParameter', 'The request body is not JSON.');
      }
      const expectedVersion = service === 'scf' ? '2018-04-16' : service === 'tcb' ? '2018-06-08' : '';
      if (v.version !== expectedVersion) {
        throw new ApiError('InvalidParameter', `Version ${v.version} is not valid for ${service}.`);
      }
      const call: RecordedCall = { service, action, region, params: structuredClone(params) };
      this.calls.push(call);
      try {
        this.injectFault(action, params);
        const out = this.dispatch({ region, service }, action, params);
        this.save();
        return { Response: { ...out, RequestId } };
      } catch (e) {
        if (e instanceof ApiError) call.error = e.code;
        throw e;
      }
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (!this.calls.some((c) => c.params === params) && e.code.startsWith('AuthFailure')) {
        this.calls.push({ service, action, region, params: {}, error: e.code });
      }
      return { Response: { Error: { Code: e.code, Message: e.message }, RequestId } };
    }
  }

  private injectFault(action: string, params: Params): void {
    const i = this.faults.findIndex((f) => f.action === action && (!f.match || f.match(params)));
    if (i < 0) return;
    const f = this.faults[i]!;
    f.times -= 1;
    if (f.times <= 0) this.faults.splice(i, 1);
    throw new ApiError(f.code, f.message);
  }

  private dispatch(ctx: Ctx, action: string, p: Params): Record<string, unknown> {
    const key = `${ctx.service}:${action}`;
    const h = (this.handlers as Record<string, (ctx: Ctx, p: Params) => Record<string, unknown>>)[key];
    if (!h)
      throw new ApiError(
        'InvalidAction',
        `The action ${action} is not supported by this fake ${ctx.service}.`,
      );
    return h.call(this, ctx, p);
  }

  // ---------- helpers ----------

  private tcbEnv(ctx: Ctx, envId: unknown): EnvState {
    const e = typeof envId === 'string' ? this.state.envs[envId] : undefined;
    if (!e || (this.opts.tcbRegional && ctx.region && e.Region !== ctx.region)) {
      throw new ApiError(
        'ResourceNotFound',
        `Environment ${String(envId)} not found (region ${ctx.region}).`,
      );
    }
    return e;
  }

  /** SCF is regional: the namespace (the environment id) exists only in its region. */
  private scfEnv(ctx: Ctx, namespace: unknown): EnvState {
    const e = typeof namespace === 'string' ? this.state.envs[namespace] : undefined;
    if (!e || e.Region !== ctx.region) {
      throw new ApiError(
        'ResourceNotFound.Namespace',
        `Namespace ${String(namespace)} does not exist in ${ctx.region || '(no region)'}.`,
      );
    }
    return e;
  }

  private fn(env: EnvState, name: unknown): FunctionState {
    const f = typeof name === 'string' ? env.functions[name] : undefined;
    if (!f) throw new ApiError('ResourceNotFound.Function', `Function ${String(name)} does not exist.`);
    return f;
  }

  private settle(f: FunctionState): void {
    if (!f.pending) return;
    if (f.pending.polls > 0) {
      f.pending.polls -= 1;
      return;
    }
    f.Status = f.pending.to;
    f.StatusReasons = f.pending.reasons;
    f.StatusDesc = f.pending.reasons.map((r) => r.ErrorMessage).join('; ');
    delete f.pending;
  }

  /** Operations refused while the function is not in a stable state. */
  private requireStable(f: FunctionState, action: string): void {
    if (f.pending || f.Status === 'Creating' || f.Status === 'Updating' || f.Status === 'Deleting') {
      throw new ApiError(
        'FailedOperation',
        `${action}: function ${f.FunctionName} is ${f.Status}; wait until it is Active.`,
      );
    }
  }

  private startOperation(
    f: FunctionState,
    during: FunctionStatus,
    to: FunctionStatus,
    reasons: StatusReason[],
  ) {
    f.Status = during;
    f.StatusDesc = '';
    f.StatusReasons = [];
    f.pending = { to, reasons, polls: this.opts.pollsToSettle ?? 0 };
    f.ModTime = nowText();
  }

  /** Resolves the Code parameter to an uploaded zip in this region. */
  private code(ctx: Ctx, env: EnvState, code: unknown, fnName: string) {
    if (typeof code !== 'object' || code === null)
      throw new ApiError('InvalidParameter', 'Code must be an object.');
    const c = code as Record<string, unknown>;
    const sources = ['ZipFile', 'TempCosObjectName', 'CosObjectName'].filter((k) => c[k] !== undefined);
    if (sources.length !== 1) {
      throw bad('Code must give exactly one of ZipFile, TempCosObjectName or CosBucketName/CosObjectName.');
    }
    let zip: Buffer;
    if (typeof c['ZipFile'] === 'string') {
      zip = Buffer.from(c['ZipFile'], 'base64');
      if (zip.length > 20 * 1024 * 1024) throw bad('ZipFile is larger than 20 MB.');
    } else if (typeof c['TempCosObjectName'] === 'string') {
      const region = (c['CosBucketRegion'] as string | undefined) ?? ctx.region;
      if (region !== ctx.region) {
        throw bad(`CosBucketRegion ${region} is not the function's region ${ctx.region}.`);
      }
      const bucket = `${TEMP_COS_PREFIX[region] ?? 'sh'}tempcos-${TEMP_COS_APPID}`;
      const object = this.state.cosObjects[`${bucket}${c['TempCosObjectName']}`];
      if (!object) {
        throw new ApiError(
          'FailedOperation.CosObjectNotFound',
          `TempCosObjectName ${String(c['TempCosObjectName'])} is not in ${bucket} (${region}).`,
        );
      }
      const expectedTail = `/${env.AppId}/${env.EnvId}/${fnName}.zip`;
      if (!String(c['TempCosObjectName']).endsWith(expectedTail)) {
        throw bad(`TempCosObjectName does not belong to ${env.EnvId}/${fnName}.`);
      }
      zip = Buffer.from(object, 'base64');
    } else {
      throw new ApiError('UnsupportedOperation', 'This fake takes code as ZipFile or TempCosObjectName.');
    }
    let files: Record<string, Uint8Array>;
    try {
      files = unzipSync(new Uint8Array(zip));
    } catch {
      throw new ApiError('FailedOperation.UnzipFail', 'The code package is not a valid zip file.');
    }
    return {
      state: {
        zip: zip.toString('base64'),
        sha256: createHash('sha256').update(zip).digest('hex'),
        size: zip.length,
      },
      files,
    };
  }

  /** What CloudBase's 云端安装依赖 would end in: Active, or failed with the npm error. */
  private installOutcome(
    fnName: string,
    install: 'TRUE' | 'FALSE',
    files: Record<string, Uint8Array>,
  ): StatusReason[] {
    const fault = this.installFailures.get(fnName);
    if (fault && install === 'TRUE') {
      fault.times -= 1;
      if (fault.times <= 0) this.installFailures.delete(fnName);
      return [{ ErrorCode: 'InstallDependencyFailed', ErrorMessage: `依赖安装失败: ${fault.reason}` }];
    }
    const pkg = files['package.json'];
    if (install === 'TRUE' && pkg) {
      try {
        JSON.parse(Buffer.from(pkg).toString('utf8'));
      } catch {
        return [
          { ErrorCode: 'InstallDependencyFailed', ErrorMessage: '依赖安装失败: package.json is not JSON' },
        ];
      }
    }
    return [];
  }

  // ---------- handlers, keyed "service:Action" ----------

  private handlers = {
    'tcb:DescribeEnvInfo'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(p, { EnvId: 'string' }, ['EnvId']);
      const e = this.tcbEnv(ctx, p['EnvId']);
      return {
        EnvInfo: {
          EnvBaseInfo: {
            EnvId: e.EnvId,
            Alias: e.Alias,
            Status: 'NORMAL',
            Source: 'miniapp',
            Region: e.Region,
            Databases: [{ InstanceId: e.DatabaseInstanceId, Status: 'RUNNING', Region: e.Region }],
            Storages: [{ Region: e.Region, Bucket: `${e.EnvId}-${e.AppId}`, AppId: e.AppId }],
            Functions: [{ Namespace: e.EnvId, Region: e.Region }],
            LogServices: [],
            CustomLogServices: [],
          },
          UserInfo: { AppId: e.AppId },
        },
      };
    },

    'tcb:ListFunctions'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(p, { EnvId: 'string', Limit: 'integer', Offset: 'integer' }, ['EnvId']);
      const e = this.tcbEnv(ctx, p['EnvId']);
      const limit = (p['Limit'] as number | undefined) ?? 20;
      const offset = (p['Offset'] as number | undefined) ?? 0;
      if (limit < 1 || limit > 100) throw bad('Limit must be from 1 to 100.');
      const all = Object.values(e.functions).sort((a, b) => a.FunctionName.localeCompare(b.FunctionName));
      return {
        Functions: all.slice(offset, offset + limit).map((f) => ({
          FunctionId: `lam-${f.FunctionName}`,
          FunctionName: f.FunctionName,
          Runtime: f.Runtime,
          AddTime: f.AddTime,
          ModTime: f.ModTime,
          Status: f.Status,
        })),
        TotalCount: all.length,
      };
    },

    'scf:GetFunction'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(
        p,
        { FunctionName: 'string', Namespace: 'string', Qualifier: 'string', ShowCode: 'string' },
        ['FunctionName'],
      );
      const e = this.scfEnv(ctx, p['Namespace']);
      const f = this.fn(e, p['FunctionName']);
      this.settle(f);
      return {
        FunctionName: f.FunctionName,
        Namespace: f.Namespace,
        Runtime: f.Runtime,
        Handler: f.Handler,
        Timeout: f.Timeout,
        MemorySize: f.MemorySize,
        Description: f.Description,
        InstallDependency: f.InstallDependency,
        Environment: { Variables: f.Variables.map((v) => ({ ...v })) },
        Status: f.Status,
        StatusDesc: f.StatusDesc,
        StatusReasons: f.StatusReasons,
        Triggers: f.Triggers.map((t) => ({ ...t, AvailableStatus: 'Available', Qualifier: '$DEFAULT' })),
        CodeSize: f.code?.size ?? 0,
        CodeResult: 'success',
        Role: 'TCB_QcsRole',
        Type: 'Event',
        AddTime: f.AddTime,
        ModTime: f.ModTime,
        Qualifier: '$LATEST',
        VpcConfig: { VpcId: '', SubnetId: '' },
      };
    },

    'scf:GetTempCosInfo'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(p, { ObjectPath: 'string' }, ['ObjectPath']);
      const path = p['ObjectPath'] as string;
      if (!/^\d+\/[^/]+\/[^/]+\.zip$/.test(path)) {
        throw bad(`ObjectPath ${path} must be <appid>/<envId>/<function>.zip.`);
      }
      const date = new Date().toISOString().slice(0, 10);
      const sign = createHash('sha256').update(`${path}:${date}:${randomUUID()}`).digest('base64');
      this.state.tempCos[path] = { Date: date, Sign: sign, Region: ctx.region };
      return { Date: date, Sign: sign };
    },

    'scf:CreateFunction'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(
        p,
        {
          FunctionName: 'string',
          Code: 'object',
          Handler: 'string',
          Description: 'string',
          MemorySize: 'integer',
          Timeout: 'integer',
          Environment: 'object',
          Runtime: 'string',
          Namespace: 'string',
          Role: 'string',
          InstallDependency: 'string',
          ClsLogsetId: 'string',
          ClsTopicId: 'string',
          Type: 'string',
          Stamp: 'string',
          L5Enable: 'string',
        },
        ['FunctionName', 'Code'],
      );
      const e = this.scfEnv(ctx, p['Namespace']);
      const name = p['FunctionName'] as string;
      if (!FUNCTION_NAME.test(name)) throw bad(`FunctionName ${name} is not 2-60 letters, digits, - and _.`);
      if (e.functions[name]) throw new ApiError('ResourceInUse.Function', `Function ${name} already exists.`);
      const handler = (p['Handler'] as string | undefined) ?? 'index.main';
      if (!HANDLER.test(handler)) throw bad(`Handler ${handler} is not file.method.`);
      const runtime = (p['Runtime'] as string | undefined) ?? 'Python2.7';
      if (!findRuntime(runtime)) throw bad(`Runtime ${runtime} is not supported.`);
      checkTimeout(p['Timeout']);
      checkMemory(p['MemorySize']);
      checkBooleanString('InstallDependency', p['InstallDependency']);
      const variables = checkVariables(p['Environment']);
      if (typeof p['Description'] === 'string' && p['Description'].length > 1000) {
        throw bad('Description is longer than 1000 characters.');
      }
      const install = (p['InstallDependency'] as 'TRUE' | 'FALSE' | undefined) ?? 'FALSE';
      const code = this.code(ctx, e, p['Code'], name);
      const reasons = this.installOutcome(name, install, code.files);
      const f: FunctionState = {
        FunctionName: name,
        Namespace: e.EnvId,
        Runtime: runtime,
        Handler: handler,
        Timeout: (p['Timeout'] as number | undefined) ?? 3,
        MemorySize: (p['MemorySize'] as number | undefined) ?? 128,
        Description: (p['Description'] as string | undefined) ?? '',
        InstallDependency: install,
        Variables: variables,
        Status: 'Creating',
        StatusDesc: '',
        StatusReasons: [],
        code: code.state,
        Triggers: [],
        AddTime: nowText(),
        ModTime: nowText(),
      };
      e.functions[name] = f;
      this.startOperation(f, 'Creating', reasons.length ? 'CreateFailed' : 'Active', reasons);
      return {};
    },

    'scf:UpdateFunctionCode'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(
        p,
        {
          FunctionName: 'string',
          Handler: 'string',
          Namespace: 'string',
          InstallDependency: 'string',
          Code: 'object',
          CodeSecret: 'string',
          Publish: 'string',
        },
        ['FunctionName'],
      );
      const e = this.scfEnv(ctx, p['Namespace']);
      const f = this.fn(e, p['FunctionName']);
      this.requireStable(f, 'UpdateFunctionCode');
      if (f.Status === 'CreateFailed') {
        throw new ApiError(
          'FailedOperation.UpdateFunctionCode',
          `Function ${f.FunctionName} is CreateFailed: delete it and create it again.`,
        );
      }
      const handler = (p['Handler'] as string | undefined) ?? f.Handler;
      if (!HANDLER.test(handler)) throw bad(`Handler ${handler} is not file.method.`);
      checkBooleanString('InstallDependency', p['InstallDependency']);
      const install = (p['InstallDependency'] as 'TRUE' | 'FALSE' | undefined) ?? f.InstallDependency;
      const code = this.code(ctx, e, p['Code'], f.FunctionName);
      const reasons = this.installOutcome(f.FunctionName, install, code.files);
      f.Handler = handler;
      f.InstallDependency = install;
      f.code = code.state;
      this.startOperation(f, 'Updating', reasons.length ? 'UpdateFailed' : 'Active', reasons);
      return {};
    },

    'scf:UpdateFunctionConfiguration'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(
        p,
        {
          FunctionName: 'string',
          Description: 'string',
          MemorySize: 'integer',
          Timeout: 'integer',
          Runtime: 'string',
          Environment: 'object',
          Namespace: 'string',
          Role: 'string',
          InstallDependency: 'string',
          ClsLogsetId: 'string',
          ClsTopicId: 'string',
          Publish: 'string',
          L5Enable: 'string',
        },
        ['FunctionName'],
      );
      const e = this.scfEnv(ctx, p['Namespace']);
      const f = this.fn(e, p['FunctionName']);
      this.requireStable(f, 'UpdateFunctionConfiguration');
      if (p['Runtime'] !== undefined && p['Runtime'] !== f.Runtime) {
        throw bad('Runtime is set when the function is created and cannot be changed.');
      }
      checkTimeout(p['Timeout']);
      checkMemory(p['MemorySize']);
      checkBooleanString('InstallDependency', p['InstallDependency']);
      if (typeof p['Description'] === 'string' && p['Description'].length > 1000) {
        throw bad('Description is longer than 1000 characters.');
      }
      // Environment replaces every variable; omitted, the variables stay.
      const variables = p['Environment'] === undefined ? f.Variables : checkVariables(p['Environment']);
      if (p['Timeout'] !== undefined) f.Timeout = p['Timeout'] as number;
      if (p['MemorySize'] !== undefined) f.MemorySize = p['MemorySize'] as number;
      if (p['Description'] !== undefined) f.Description = p['Description'] as string;
      f.Variables = variables;
      const keep = f.Status === 'UpdateFailed' ? 'UpdateFailed' : 'Active';
      this.startOperation(f, 'Updating', keep, keep === 'UpdateFailed' ? f.StatusReasons : []);
      return {};
    },

    'scf:DeleteFunction'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(p, { FunctionName: 'string', Namespace: 'string', Qualifier: 'string' }, ['FunctionName']);
      const e = this.scfEnv(ctx, p['Namespace']);
      const f = this.fn(e, p['FunctionName']);
      this.requireStable(f, 'DeleteFunction');
      delete e.functions[f.FunctionName];
      return {};
    },

    'scf:BatchCreateTrigger'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(p, { FunctionName: 'string', Triggers: 'string', Count: 'integer', Namespace: 'string' }, [
        'FunctionName',
        'Triggers',
        'Count',
      ]);
      const e = this.scfEnv(ctx, p['Namespace']);
      const f = this.fn(e, p['FunctionName']);
      this.requireStable(f, 'BatchCreateTrigger');
      let list: { TriggerName?: unknown; Type?: unknown; TriggerDesc?: unknown }[];
      try {
        list = JSON.parse(p['Triggers'] as string);
      } catch {
        throw bad('Triggers must be a JSON array string.');
      }
      if (!Array.isArray(list) || list.length !== p['Count'])
        throw bad('Count must equal the number of Triggers.');
      for (const t of list) this.addTrigger(f, t.TriggerName, t.Type, t.TriggerDesc);
      return {};
    },

    'scf:CreateTrigger'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(
        p,
        {
          FunctionName: 'string',
          TriggerName: 'string',
          Type: 'string',
          TriggerDesc: 'string',
          Namespace: 'string',
          Qualifier: 'string',
          Enable: 'string',
          CustomArgument: 'string',
          Description: 'string',
        },
        ['FunctionName', 'TriggerName', 'Type'],
      );
      const e = this.scfEnv(ctx, p['Namespace']);
      const f = this.fn(e, p['FunctionName']);
      this.requireStable(f, 'CreateTrigger');
      this.addTrigger(f, p['TriggerName'], p['Type'], p['TriggerDesc']);
      return { TriggerInfo: f.Triggers.at(-1) };
    },

    'scf:UpdateTrigger'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(
        p,
        {
          FunctionName: 'string',
          TriggerName: 'string',
          Type: 'string',
          Enable: 'string',
          Qualifier: 'string',
          Namespace: 'string',
          TriggerDesc: 'string',
          Description: 'string',
          CustomArgument: 'string',
        },
        ['FunctionName', 'TriggerName', 'Type'],
      );
      const e = this.scfEnv(ctx, p['Namespace']);
      const f = this.fn(e, p['FunctionName']);
      this.requireStable(f, 'UpdateTrigger');
      const t = f.Triggers.find((x) => x.TriggerName === p['TriggerName'] && x.Type === p['Type']);
      if (!t)
        throw new ApiError('ResourceNotFound.Trigger', `Trigger ${String(p['TriggerName'])} does not exist.`);
      if (p['TriggerDesc'] !== undefined) {
        checkCron(p['TriggerDesc']);
        t.TriggerDesc = p['TriggerDesc'] as string;
      }
      if (p['Enable'] !== undefined) t.Enable = p['Enable'] === 'OPEN' ? 1 : 0;
      t.ModTime = nowText();
      return {};
    },

    'scf:DeleteTrigger'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(
        p,
        {
          FunctionName: 'string',
          TriggerName: 'string',
          Type: 'string',
          Namespace: 'string',
          TriggerDesc: 'string',
          Qualifier: 'string',
        },
        ['FunctionName', 'TriggerName', 'Type'],
      );
      const e = this.scfEnv(ctx, p['Namespace']);
      const f = this.fn(e, p['FunctionName']);
      const i = f.Triggers.findIndex((x) => x.TriggerName === p['TriggerName'] && x.Type === p['Type']);
      if (i < 0)
        throw new ApiError('ResourceNotFound.Trigger', `Trigger ${String(p['TriggerName'])} does not exist.`);
      f.Triggers.splice(i, 1);
      return {};
    },

    'scf:Invoke'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(
        p,
        {
          FunctionName: 'string',
          Namespace: 'string',
          LogType: 'string',
          ClientContext: 'string',
          InvocationType: 'string',
          Qualifier: 'string',
        },
        ['FunctionName'],
      );
      const e = this.scfEnv(ctx, p['Namespace']);
      const f = this.fn(e, p['FunctionName']);
      if (f.Status !== 'Active') {
        throw new ApiError(
          'FailedOperation.FunctionStatusError',
          `Function ${f.FunctionName} is ${f.Status}.`,
        );
      }
      if (!this.invoker)
        throw new ApiError('UnsupportedOperation', 'This fake was started without an invoker.');
      const event = p['ClientContext'] ? JSON.parse(p['ClientContext'] as string) : {};
      const r = this.invoker(e, f, event);
      return {
        Result: {
          FunctionRequestId: randomUUID(),
          RetMsg: r.error ? '' : JSON.stringify(r.result ?? null),
          ErrMsg: r.error ?? '',
          Log: r.log,
          Duration: r.durationMs,
          BillDuration: Math.ceil(r.durationMs),
          MemUsage: 0,
          InvokeResult: r.error ? 1 : 0,
        },
      };
    },

    'tcb:DescribeTable'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      const e = this.tableEnv(ctx, p);
      const t = e.tables[p['TableName'] as string];
      if (!t) throw new ApiError('ResourceNotFound', `Db or Table not exist: ${String(p['TableName'])}.`);
      return {
        Indexes: t.Indexes.map((i) => ({ ...i, Size: 4096, Accesses: { Ops: 0, Since: nowText() } })),
        IndexNum: t.Indexes.length,
      };
    },

    'tcb:CreateTable'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      const e = this.tableEnv(ctx, p);
      const name = p['TableName'] as string;
      if (!TABLE_NAME.test(name))
        throw bad(`TableName ${name} is not 1-96 letters, digits, _ and -, not starting with _.`);
      if (e.tables[name]) throw new ApiError('ResourceInUse', `Table ${name} already exists.`);
      e.tables[name] = {
        TableName: name,
        Indexes: [{ Name: '_id_', Keys: [{ Name: '_id', Direction: '1' }], Unique: true }],
      };
      return {};
    },

    'tcb:UpdateTable'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      const e = this.tableEnv(ctx, p, { DropIndexes: 'array', CreateIndexes: 'array' });
      const t = e.tables[p['TableName'] as string];
      if (!t) throw new ApiError('ResourceNotFound', `Db or Table not exist: ${String(p['TableName'])}.`);
      for (const d of (p['DropIndexes'] as { IndexName?: string }[] | undefined) ?? []) {
        if (d.IndexName === '_id_') throw bad('The _id_ index cannot be dropped.');
        const i = t.Indexes.findIndex((x) => x.Name === d.IndexName);
        if (i < 0) throw new ApiError('ResourceNotFound', `Index ${String(d.IndexName)} does not exist.`);
        t.Indexes.splice(i, 1);
      }
      for (const c of (p['CreateIndexes'] as Record<string, unknown>[] | undefined) ?? []) {
        const name = c['IndexName'];
        const schema = c['MgoKeySchema'] as {
          MgoIndexKeys?: { Name?: unknown; Direction?: unknown }[];
          MgoIsUnique?: unknown;
        };
        if (typeof name !== 'string' || name === '' || name === '_id_')
          throw bad(`IndexName ${String(name)} is not valid.`);
        if (t.Indexes.some((x) => x.Name === name))
          throw new ApiError('ResourceInUse', `Index ${name} already exists.`);
        const keys = schema?.MgoIndexKeys ?? [];
        if (keys.length === 0) throw bad(`Index ${name} has no keys.`);
        for (const k of keys) {
          if (typeof k.Name !== 'string' || !['1', '-1', '2dsphere'].includes(String(k.Direction))) {
            throw bad(`Index ${name}: key ${String(k.Name)} direction must be "1", "-1" or "2dsphere".`);
          }
        }
        if (typeof schema.MgoIsUnique !== 'boolean')
          throw bad(`Index ${name}: MgoIsUnique must be a boolean.`);
        t.Indexes.push({
          Name: name,
          Keys: keys.map((k) => ({ Name: k.Name as string, Direction: String(k.Direction) })),
          Unique: schema.MgoIsUnique,
        });
      }
      return {};
    },

    'tcb:ModifyResourcePermission'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(
        p,
        {
          EnvId: 'string',
          ResourceType: 'string',
          Permission: 'string',
          Resource: 'string',
          SecurityRule: 'string',
        },
        ['EnvId', 'ResourceType', 'Permission'],
      );
      const e = this.tcbEnv(ctx, p['EnvId']);
      const type = p['ResourceType'] as string;
      const allowed: Record<string, string[]> = {
        function: ['CUSTOM'],
        storage: ['READONLY', 'PRIVATE', 'ADMINWRITE', 'ADMINONLY', 'CUSTOM'],
        table: ['READONLY', 'PRIVATE', 'ADMINWRITE', 'ADMINONLY'],
        collection: ['READONLY', 'PRIVATE', 'ADMINWRITE', 'ADMINONLY', 'CUSTOM'],
      };
      if (!allowed[type]) throw bad(`ResourceType ${type} is not function, storage, table or collection.`);
      if (!allowed[type]!.includes(p['Permission'] as string)) {
        throw bad(`Permission ${String(p['Permission'])} is not allowed for ${type}.`);
      }
      if (type !== 'function' && !p['Resource'])
        throw new ApiError('MissingParameter', 'Resource is required.');
      if (type === 'collection' && !e.tables[p['Resource'] as string]) {
        throw new ApiError('ResourceNotFound', `Collection ${String(p['Resource'])} does not exist.`);
      }
      if (p['Permission'] === 'CUSTOM') {
        try {
          JSON.parse(p['SecurityRule'] as string);
        } catch {
          throw bad('SecurityRule must be a JSON rule when Permission is CUSTOM.');
        }
      }
      e.permissions[`${type}:${(p['Resource'] as string | undefined) ?? ''}`] = {
        Permission: p['Permission'] as string,
        ...(p['SecurityRule'] ? { SecurityRule: p['SecurityRule'] as string } : {}),
      };
      return {};
    },

    // ----- HTTP 访问服务（旧）: the CloudBaseGW API -----

    'tcb:DescribeCloudBaseGWService'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(p, { ServiceId: 'string' }, ['ServiceId']);
      const e = this.tcbEnv(ctx, p['ServiceId']);
      return { ServiceSet: null, EnableService: true, DefaultDomain: e.legacyDefaultDomain };
    },

    'tcb:DescribeCloudBaseGWAPI'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(
        p,
        {
          ServiceId: 'string',
          Domain: 'string',
          Path: 'string',
          APIId: 'string',
          Type: 'integer',
          Name: 'string',
          Offset: 'integer',
          Limit: 'integer',
        },
        [],
      );
      const e = this.tcbEnv(ctx, p['ServiceId']);
      const list = e.gatewayApis.filter(
        (a) =>
          (p['Path'] === undefined || a.Path === p['Path']) &&
          (p['Name'] === undefined || a.Name === p['Name']) &&
          (p['APIId'] === undefined || a.APIId === p['APIId']),
      );
      // Documented: "APISet … 可能返回 null". It does when nothing matches.
      return {
        APISet: list.length ? list.map((a) => ({ ...a, EnvId: e.EnvId, Domain: '*' })) : null,
        EnableService: true,
        Total: list.length,
        Offset: (p['Offset'] as number | undefined) ?? 0,
        Limit: (p['Limit'] as number | undefined) ?? 100,
      };
    },

    'tcb:CreateCloudBaseGWAPI'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(
        p,
        {
          ServiceId: 'string',
          Path: 'string',
          Type: 'integer',
          Name: 'string',
          AuthSwitch: 'integer',
          APIId: 'string',
        },
        ['ServiceId', 'Path', 'Type', 'Name'],
      );
      const e = this.tcbEnv(ctx, p['ServiceId']);
      const path = p['Path'] as string;
      if (!path.startsWith('/')) throw bad('Path must start with /.');
      if (p['Type'] !== 1)
        throw new ApiError('UnsupportedOperation', 'This fake routes to functions (Type 1) only.');
      if (!e.functions[p['Name'] as string]) {
        throw new ApiError('ResourceNotFound.Function', `Function ${String(p['Name'])} does not exist.`);
      }
      if (e.gatewayApis.some((a) => a.Path === path)) {
        throw new ApiError('InvalidParameter.APICreated', `Path ${path} is already created.`);
      }
      const auth = p['AuthSwitch'] ?? 2;
      if (auth !== 1 && auth !== 2) throw bad('AuthSwitch must be 1 (on) or 2 (off).');
      const api = {
        APIId: this.id('api'),
        ServiceId: e.EnvId,
        Path: path,
        Type: 1,
        Name: p['Name'] as string,
        EnableAuth: auth === 1,
        CreateTime: Math.floor(Date.now() / 1000),
      };
      e.gatewayApis.push(api);
      return { APIId: api.APIId };
    },

    'tcb:ModifyCloudBaseGWAPIPrivilegeBatch'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(p, { ServiceId: 'string', APIIdSet: 'array', Options: 'array' }, [
        'ServiceId',
        'APIIdSet',
        'Options',
      ]);
      const e = this.tcbEnv(ctx, p['ServiceId']);
      const opt = (p['Options'] as { Key?: string; Value?: string }[]).find((o) => o.Key === 'authswitch');
      if (!opt || (opt.Value !== 'true' && opt.Value !== 'false'))
        throw bad('Options must set authswitch true or false.');
      for (const id of p['APIIdSet'] as string[]) {
        const a = e.gatewayApis.find((x) => x.APIId === id);
        if (!a) throw new ApiError('ResourceNotFound', `API ${id} does not exist.`);
        a.EnableAuth = opt.Value === 'true';
      }
      return {};
    },

    'tcb:DeleteCloudBaseGWAPI'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(
        p,
        { ServiceId: 'string', Path: 'string', Type: 'integer', Name: 'string', APIId: 'string' },
        ['ServiceId'],
      );
      const e = this.tcbEnv(ctx, p['ServiceId']);
      e.gatewayApis = e.gatewayApis.filter(
        (a) =>
          !(
            (p['Name'] === undefined || a.Name === p['Name']) &&
            (p['APIId'] === undefined || a.APIId === p['APIId']) &&
            (p['Path'] === undefined || a.Path === p['Path'])
          ),
      );
      return { Count: 1 };
    },

    // ----- HTTP 访问服务 (current): domains and routes -----

    'tcb:DescribeHTTPServiceRoute'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(p, { EnvId: 'string', Filters: 'array', Offset: 'integer', Limit: 'integer' }, ['EnvId']);
      const e = this.httpEnv(ctx, p['EnvId']);
      let domains = e.domains;
      for (const f of (p['Filters'] as { Name?: string; Values?: string[] }[] | undefined) ?? []) {
        if (f.Name === 'Domain') domains = domains.filter((d) => f.Values?.includes(d.Domain));
        else if (f.Name === 'Path') {
          domains = domains.map((d) => ({
            ...d,
            Routes: d.Routes.filter((r) => f.Values?.includes(r.Path)),
          }));
        } else if (f.Name !== 'DomainType' && f.Name !== 'UpstreamResourceType') {
          throw bad(`Filter ${String(f.Name)} is not Domain, Path, DomainType or UpstreamResourceType.`);
        }
      }
      return {
        Domains: domains.map((d) => ({ ...d, Routes: d.Routes.map((r) => ({ ...r })) })),
        OriginDomain: `${e.EnvId}.origin.tcloudbase.com`,
        TotalCount: domains.length,
      };
    },

    'tcb:CreateHTTPServiceRoute'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(p, { EnvId: 'string', Domain: 'object' }, ['EnvId', 'Domain']);
      const e = this.httpEnv(ctx, p['EnvId']);
      const { domain, routes } = this.domainParam(e, p['Domain']);
      for (const r of routes) {
        if (domain.Routes.some((x) => x.Path === r['Path'])) {
          throw new ApiError(
            'ResourceInUse',
            `Route ${String(r['Path'])} already exists on ${domain.Domain}.`,
          );
        }
        if (r['UpstreamResourceType'] === undefined || r['UpstreamResourceName'] === undefined) {
          throw new ApiError(
            'MissingParameter',
            'UpstreamResourceType and UpstreamResourceName are required to create a route.',
          );
        }
        domain.Routes.push(this.route(e, r, undefined));
      }
      return {};
    },

    'tcb:ModifyHTTPServiceRoute'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(p, { EnvId: 'string', Domain: 'object' }, ['EnvId', 'Domain']);
      const e = this.httpEnv(ctx, p['EnvId']);
      const { domain, routes } = this.domainParam(e, p['Domain']);
      for (const r of routes) {
        const i = domain.Routes.findIndex((x) => x.Path === r['Path']);
        if (i < 0)
          throw new ApiError(
            'ResourceNotFound',
            `Route ${String(r['Path'])} does not exist on ${domain.Domain}.`,
          );
        domain.Routes[i] = this.route(e, r, domain.Routes[i]);
      }
      return {};
    },

    'tcb:DeleteHTTPServiceRoute'(this: FakeTencentCloud, ctx: Ctx, p: Params) {
      checkParams(p, { EnvId: 'string', Domain: 'string', Paths: 'array' }, ['EnvId', 'Domain']);
      const e = this.httpEnv(ctx, p['EnvId']);
      const d = e.domains.find((x) => x.Domain === p['Domain']);
      if (!d) throw new ApiError('ResourceNotFound', `Domain ${String(p['Domain'])} does not exist.`);
      const paths = p['Paths'] as string[] | undefined;
      d.Routes = paths ? d.Routes.filter((r) => !paths.includes(r.Path)) : [];
      return {};
    },
  };

  private tableEnv(ctx: Ctx, p: Params, extra: Record<string, ParamType> = {}): EnvState {
    checkParams(
      p,
      { EnvId: 'string', TableName: 'string', Tag: 'string', MongoConnector: 'object', ...extra },
      ['EnvId', 'TableName'],
    );
    const e = this.tcbEnv(ctx, p['EnvId']);
    const mc = p['MongoConnector'] as { InstanceId?: string; DatabaseName?: string } | undefined;
    if (mc && (mc.InstanceId !== 'flexdb' || mc.DatabaseName !== e.DatabaseInstanceId)) {
      throw bad(`MongoConnector must be {InstanceId: flexdb, DatabaseName: ${e.DatabaseInstanceId}}.`);
    }
    return e;
  }

  private httpEnv(ctx: Ctx, envId: unknown): EnvState {
    const e = this.tcbEnv(ctx, envId);
    if (!e.httpService) {
      throw new ApiError(
        'FailedOperation',
        `HTTP 访问服务未开通 for ${e.EnvId}: this environment has only HTTP 访问服务（旧）.`,
      );
    }
    return e;
  }

  private domainParam(e: EnvState, domainParam: unknown) {
    const dp = domainParam as { Domain?: unknown; Routes?: unknown };
    const domain = e.domains.find((d) => d.Domain === dp.Domain);
    if (!domain)
      throw new ApiError('ResourceNotFound', `Domain ${String(dp.Domain)} is not bound to ${e.EnvId}.`);
    const routes = (dp.Routes ?? []) as Record<string, unknown>[];
    if (!Array.isArray(routes) || routes.length > 20) throw bad('Routes must be an array of at most 20.');
    for (const r of routes) {
      if (typeof r['Path'] !== 'string' || !r['Path'].startsWith('/'))
        throw bad('Route Path must start with /.');
      for (const k of Object.keys(r)) {
        if (
          ![
            'Path',
            'UpstreamResourceType',
            'UpstreamResourceName',
            'PathRewrite',
            'EnableSafeDomain',
            'EnableAuth',
            'EnablePathTransmission',
            'QPSPolicy',
            'Enable',
            'Extension',
          ].includes(k)
        ) {
          throw new ApiError('UnknownParameter', `The parameter \`Domain.Routes.${k}\` is not recognized.`);
        }
      }
    }
    return { domain, routes };
  }

  private route(e: EnvState, r: Record<string, unknown>, old: HttpRoute | undefined): HttpRoute {
    const type = (r['UpstreamResourceType'] as string | undefined) ?? old?.UpstreamResourceType;
    const name = (r['UpstreamResourceName'] as string | undefined) ?? old?.UpstreamResourceName;
    if (type !== 'SCF')
      throw new ApiError('UnsupportedOperation', 'This fake routes to functions (SCF) only.');
    if (!name || !e.functions[name])
      throw new ApiError('ResourceNotFound.Function', `Function ${String(name)} does not exist.`);
    const flag = (k: string, dflt: boolean) => {
      const v = r[k];
      if (v !== undefined && typeof v !== 'boolean')
        throw new ApiError('InvalidParameter', `${k} must be a boolean.`);
      return (v as boolean | undefined) ?? (old ? (old[k as keyof HttpRoute] as boolean) : dflt);
    };
    return {
      Path: r['Path'] as string,
      UpstreamResourceType: type,
      UpstreamResourceName: name,
      // Documented defaults: safe domain on, authentication off, path transmission off.
      EnableSafeDomain: flag('EnableSafeDomain', true),
      EnableAuth: flag('EnableAuth', false),
      EnablePathTransmission: flag('EnablePathTransmission', false),
      Enable: flag('Enable', true),
      CreateTime: old?.CreateTime ?? nowText(),
      UpdateTime: nowText(),
    };
  }

  private addTrigger(f: FunctionState, name: unknown, type: unknown, desc: unknown): void {
    if (typeof name !== 'string' || !TRIGGER_NAME.test(name))
      throw bad(`TriggerName ${String(name)} is not valid.`);
    if (type !== 'timer') throw new ApiError('UnsupportedOperation', 'This fake takes timer triggers only.');
    checkCron(desc);
    if (f.Triggers.some((t) => t.TriggerName === name)) {
      throw new ApiError('ResourceInUse.Trigger', `Trigger ${name} already exists on ${f.FunctionName}.`);
    }
    if (f.Triggers.length >= 10)
      throw new ApiError('LimitExceeded.Trigger', 'At most 10 triggers per function.');
    f.Triggers.push({
      TriggerName: name,
      Type: 'timer',
      TriggerDesc: desc as string,
      Enable: 1,
      AddTime: nowText(),
      ModTime: nowText(),
    });
  }

  // ---------- COS (the temporary bucket manager-node uploads code to) ----------

  /**
   * A sliceUploadFile to SCF's temporary bucket, authorised by the Sign GetTempCosInfo gave for
   * exactly this object path, in the bucket of the region it was asked in.
   */
  cosUpload(p: { Bucket: string; Region: string; Key: string; body: Buffer; authorization: string }): {
    Bucket: string;
    Key: string;
    Location: string;
    ETag: string;
  } {
    const m = /^\/(\d{4}-\d{2}-\d{2})\/(.+)$/.exec(p.Key);
    const grant = m ? this.state.tempCos[m[2]!] : undefined;
    const error = (code: string, message: string) =>
      Object.assign(new Error(message), { code, statusCode: 403 });
    if (!m || !grant) throw error('AccessDenied', `No temporary COS grant for ${p.Key}.`);
    if (grant.Date !== m[1] || grant.Sign !== p.authorization)
      throw error('SignatureDoesNotMatch', 'The Sign is not the one GetTempCosInfo gave.');
    if (grant.Region !== p.Region)
      throw error('AccessDenied', `The grant is for ${grant.Region}, the upload went to ${p.Region}.`);
    const bucket = `${TEMP_COS_PREFIX[p.Region] ?? '?'}tempcos-${TEMP_COS_APPID}`;
    if (p.Bucket !== bucket)
      throw error('NoSuchBucket', `Bucket ${p.Bucket} is not SCF's temporary bucket in ${p.Region}.`);
    this.state.cosObjects[`${p.Bucket}${p.Key}`] = p.body.toString('base64');
    this.calls.push({
      service: 'cos',
      action: 'SliceUploadFile',
      region: p.Region,
      params: { Bucket: p.Bucket, Key: p.Key, size: p.body.length },
    });
    this.save();
    const key = p.Key.slice(1);
    return {
      Bucket: p.Bucket,
      Key: key,
      Location: `${p.Bucket}.cos.${p.Region}.myqcloud.com/${key}`,
      ETag: `"${createHash('md5').update(p.body).digest('hex')}"`,
    };
  }

  // ---------- running deployed code ----------

  /** Runs a function's deployed code; `context` adds the WX_* variables CloudBase sets for a caller. */
  invoker:
    | ((
        env: EnvState,
        f: FunctionState,
        event: unknown,
        context?: Record<string, string>,
      ) => { result?: unknown; error?: string; log: string; durationMs: number })
    | undefined;

  /** The files of a function's deployed code package. */
  codeFiles(envId: string, fn: string): Record<string, Uint8Array> {
    const f = this.env(envId).functions[fn];
    if (!f?.code) throw new Error(`fake: ${fn} has no code`);
    return unzipSync(new Uint8Array(Buffer.from(f.code.zip, 'base64')));
  }

  /** The default domain of the current HTTP access service, as DescribeHTTPServiceRoute shows it. */
  defaultDomain(envId: string): string | undefined {
    const e = this.env(envId);
    return (
      e.domains.find((d) => d.IsDefault)?.Domain ??
      (e.httpService ? defaultHttpDomain(e.EnvId, e.Region) : undefined)
    );
  }
}
