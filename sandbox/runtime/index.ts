/**
 * Runs built cloud functions (dist/cloudfunctions/<fn>/index.js) the way CloudBase does.
 *
 * - Functions run on the Node major of the configured CloudBase runtime
 *   (CLOUDBASE_FUNCTION_RUNTIME, default in scripts/runtimes.ts), found by node.ts, whatever
 *   Node runs this process. A bundle whose package.json records another major (engines.node,
 *   written by the build) is refused, so no test passes on a runtime the deploy will not use.
 * - Instances are child processes of that Node: each has its own process.env, runs one
 *   invocation at a time, and stays warm between invocations. Under concurrency a
 *   function's pool grows up to `maxInstances`; further calls queue.
 * - The WX context goes where wx-server-sdk's getWXContext() reads it: WX_CONTEXT_KEYS plus
 *   WX_* variables, TCB_ENV and TCB_SOURCE (reference §2), set per invocation.
 * - Each invocation gets its own database URL (`<emulator>/inv/<invocationId>/admin` in
 *   TCB_CONTEXT_CNFG, which the node-sdk re-reads per request), so the emulator can count
 *   that invocation's database requests.
 * - config.json `timeout` (seconds, default 3) is enforced by killing the instance. main()
 *   gets SCF's context as its second argument: time_limit_in_ms, getRemainingTimeInMillis()
 *   (from the invocation's start, cold-start init excluded), request_id, function_name…
 * - config.json timer triggers run on a 7-field cron in UTC+8.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cron } from 'croner';
import type { NodeRuntime } from '../../scripts/runtimes';
import { configuredRuntime, enginesRange, esbuildTarget, recordedMajor } from '../../scripts/target';
import { type FunctionNode, resolveFunctionNode } from './node';
import { parseTimerCron, type TimerTrigger, timerEvent } from './timers';

export { type FunctionNode, FunctionNodeError, resolveFunctionNode } from './node';
export { nextTimerRuns, parseTimerCron, type TimerEvent, timerEvent } from './timers';

/** The caller as the platform knows it; what getWXContext() will return. */
export interface InvokeContext {
  OPENID?: string;
  APPID?: string;
  UNIONID?: string;
  CLIENTIP?: string;
  CLIENTIPV6?: string;
  SOURCE?: string;
  ENV?: string;
}

export interface InvokeError {
  code: 'FUNCTION_ERROR' | 'FUNCTION_TIMEOUT' | 'FUNCTION_CRASHED';
  message: string;
  stack?: string;
}

export interface InvokeResult {
  requestId: string;
  /** main()'s resolved value after a JSON round trip (null when it returned nothing or failed). */
  result: unknown;
  durationMs: number;
  /** Database requests this invocation made to the emulator. */
  dbRequests: number;
  /** A new instance was started (module loaded) for this invocation. */
  coldStart: boolean;
  /** Cold starts only: module load time, which (as on SCF) does not count against the timeout. */
  initMs?: number;
  error?: InvokeError;
}

export interface FunctionRuntimeOptions {
  /** Built functions; default dist/cloudfunctions. */
  functionsDir?: string;
  /** The emulator's serviceUrl (…/admin). */
  serviceUrl: string;
  /** Environment variables every function gets (configuration, secrets). */
  env?: Record<string, string>;
  envId?: string;
  /** Instances per function at most; calls beyond wait. Default 10. */
  maxInstances?: number;
  /**
   * Reads and resets one invocation's database request count. Default: ask the emulator
   * over HTTP (it may run in another process); in-process callers can pass
   * `emulator.takeRequestCount`.
   */
  takeDbRequestCount?: (scope: string) => number | Promise<number>;
  /** One line per invocation; default console.log. */
  log?: (line: string) => void;
  /**
   * Every line a function prints (its structured JSON logs, as CloudBase's log console would
   * show them); default: this process's stdout. Tests pass a sink to keep quiet or to scan.
   */
  functionLog?: (fn: string, line: string) => void;
  now?: () => Date;
  /** The CloudBase runtime to run on; default CLOUDBASE_FUNCTION_RUNTIME or the project default. */
  runtime?: NodeRuntime;
  /** The Node binary to run functions with; default resolveFunctionNode(runtime). */
  node?: FunctionNode;
}

export interface FunctionRuntime {
  invoke(name: string, event: unknown, ctx?: InvokeContext): Promise<InvokeResult>;
  has(name: string): boolean;
  /** Functions with a timer trigger: function name → trigger. */
  timers(): Record<string, TimerTrigger>;
  startTimers(): void;
  stopTimers(): void;
  /** Fires a timer now, by trigger name or function name. */
  fireTimer(name: string): Promise<InvokeResult>;
  /** Instances currently alive for a function (for tests and the console). */
  instanceCount(name: string): number;
  /**
   * New environment variables for every function, as after changing them in the CloudBase
   * console: running calls finish on their instance, every later call runs on a fresh one.
   */
  reconfigure(env: Record<string, string>): Promise<void>;
  /** The runtime functions run on, and the Node binary that runs them. */
  readonly runtime: NodeRuntime;
  readonly node: FunctionNode;
  close(): Promise<void>;
}

export class FunctionNotFoundError extends Error {
  constructor(readonly functionName: string) {
    super(`function ${functionName} not found`);
  }
}

/** A bundle compiled for another Node major than the runtime's, or with no record of one. */
export class BundleTargetError extends Error {
  readonly code = 'BUNDLE_TARGET_MISMATCH';
}

interface FunctionConfig {
  timeout?: number;
  envVariables?: Record<string, string>;
  triggers?: TimerTrigger[];
}

interface Instance {
  proc: ChildProcess;
  busy: boolean;
  /** Resolves when the module is loaded: null, or why it failed to load. */
  ready: Promise<InvokeError | null>;
  /** Settles the invocation in flight when the process dies under it. */
  onDeath: ((error: InvokeError) => void) | null;
  /** Started with an environment that was replaced since: stopped once its call ends. */
  retired?: boolean;
}

interface Pool {
  config: FunctionConfig;
  instances: Instance[];
  waiting: ((inst: Instance) => void)[];
}

type InstanceReply =
  | { type: 'ready'; ok: boolean; error?: { message: string; stack: string } }
  | { type: 'result'; id: string; ok: true; result: unknown }
  | { type: 'result'; id: string; ok: false; error: { name: string; message: string; stack: string } };

const DEFAULT_TIMEOUT_S = 3;
const INSTANCE_FILE = fileURLToPath(new URL('./instance.cjs', import.meta.url));
const PROJECT_NODE_MODULES = fileURLToPath(new URL('../../node_modules', import.meta.url));
const CONTEXT_KEYS = ['OPENID', 'APPID', 'UNIONID', 'CLIENTIP', 'CLIENTIPV6'] as const;

function httpTakeCount(serviceUrl: string): (scope: string) => Promise<number> {
  const origin = new URL(serviceUrl).origin;
  return (scope) =>
    new Promise((resolvePromise, reject) => {
      const req = request(
        `${origin}/_emulator/requests/${encodeURIComponent(scope)}`,
        { method: 'POST' },
        (res) => {
          let body = '';
          res.on('data', (c) => {
            body += c;
          });
          res.on('end', () => {
            try {
              resolvePromise(Number((JSON.parse(body) as { count: number }).count) || 0);
            } catch (e) {
              reject(e);
            }
          });
        },
      );
      req.on('error', reject);
      req.end();
    });
}

/**
 * What an SCF container sets for a function, as every process that stands in for one gets it
 * (the runtime's instances, the bench's cold starts and bill check). TENCENTCLOUD=true also
 * tells the node-sdk it runs inside Tencent Cloud, so `cloud.init` does not probe
 * metadata.tencentyun.com: without it a function that initialises the SDK at load spends
 * about 30 ms of CPU and a DNS lookup on a probe that production never makes.
 */
export function platformEnvironment(o: {
  envId: string;
  functionName: string;
  serviceUrl: string;
}): Record<string, string> {
  return {
    TENCENTCLOUD_RUNENV: 'SCF',
    TENCENTCLOUD: 'true',
    TENCENTCLOUD_REGION: 'ap-shanghai',
    TENCENTCLOUD_SECRETID: 'local',
    TENCENTCLOUD_SECRETKEY: 'local',
    SCF_NAMESPACE: o.envId,
    SCF_FUNCTIONNAME: o.functionName,
    TCB_ENV: o.envId,
    TCB_CONTEXT_CNFG: JSON.stringify({ URL: o.serviceUrl }),
  };
}

export function createFunctionRuntime(options: FunctionRuntimeOptions): FunctionRuntime {
  const functionsDir = resolve(options.functionsDir ?? 'dist/cloudfunctions');
  const envId = options.envId ?? 'local';
  const maxInstances = options.maxInstances ?? 10;
  const origin = new URL(options.serviceUrl).origin;
  const takeCount = options.takeDbRequestCount ?? httpTakeCount(options.serviceUrl);
  const log = options.log ?? ((line: string) => console.log(line));
  const functionLog =
    options.functionLog ?? ((_fn: string, line: string) => process.stdout.write(`${line}\n`));
  const now = options.now ?? (() => new Date());
  const runtime = options.runtime ?? configuredRuntime();
  const node = options.node ?? resolveFunctionNode(runtime);
  const nodePath = [PROJECT_NODE_MODULES, process.env['NODE_PATH'] ?? ''].filter(Boolean).join(delimiter);
  const pools = new Map<string, Pool>();
  const crons: Cron[] = [];
  let closed = false;
  let currentEnv: Record<string, string> = { ...(options.env ?? {}) };

  const indexPath = (name: string) => join(functionsDir, name, 'index.js');

  function has(name: string): boolean {
    return /^[A-Za-z][A-Za-z0-9_-]*$/.test(name) && existsSync(indexPath(name));
  }

  /** Refuses a bundle not compiled for this runtime's major (see scripts/target.ts). */
  function checkTarget(name: string): void {
    const path = join(functionsDir, name, 'package.json');
    const major = existsSync(path) ? recordedMajor(JSON.parse(readFileSync(path, 'utf8'))) : undefined;
    if (major === runtime.major) return;
    const fix = `rebuild with \`npm run build\` (CLOUDBASE_FUNCTION_RUNTIME=${runtime.name} builds for ${esbuildTarget(runtime)})`;
    throw new BundleTargetError(
      major === undefined
        ? `${join(functionsDir, name)} has no build target recorded (package.json engines.node "${enginesRange(runtime)}"); the runtime ${runtime.name} runs only bundles built for Node ${runtime.major}: ${fix}`
        : `${join(functionsDir, name)} was built for node${major}, but the runtime is ${runtime.name} (Node ${runtime.major}): ${fix}, or set CLOUDBASE_FUNCTION_RUNTIME to the runtime it was built for`,
    );
  }

  // Fail at start rather than on some later call: every bundle present must fit the runtime.
  if (existsSync(functionsDir)) for (const fn of readdirNames(functionsDir)) if (has(fn)) checkTarget(fn);

  function readConfig(name: string): FunctionConfig {
    const path = join(functionsDir, name, 'config.json');
    return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as FunctionConfig) : {};
  }

  function pool(name: string): Pool {
    let p = pools.get(name);
    if (!p) {
      checkTarget(name);
      p = { config: readConfig(name), instances: [], waiting: [] };
      pools.set(name, p);
    }
    return p;
  }

  function spawn(name: string, p: Pool): Instance {
    const env: Record<string, string> = {
      PATH: process.env['PATH'] ?? '',
      // Dependencies resolve from the function folder first (its own node_modules, as after
      // 云端安装依赖), then from the project's node_modules.
      NODE_PATH: nodePath,
      ...platformEnvironment({ envId, functionName: name, serviceUrl: options.serviceUrl }),
      ...(p.config.envVariables ?? {}),
      ...currentEnv,
    };
    const proc = fork(INSTANCE_FILE, [indexPath(name)], {
      execPath: node.path,
      // Plain Node, like the platform: no TypeScript/test loaders inherited from the host.
      execArgv: [],
      env,
      // SCF runs a function with its code folder as the working directory.
      cwd: join(functionsDir, name),
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'json',
    });
    for (const stream of [proc.stdout!, proc.stderr!]) {
      let buffered = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        buffered += chunk;
        for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
          functionLog(name, buffered.slice(0, nl));
          buffered = buffered.slice(nl + 1);
        }
      });
      stream.on('end', () => {
        if (buffered) functionLog(name, buffered);
      });
    }
    let markReady: (e: InvokeError | null) => void = () => {};
    const inst: Instance = {
      proc,
      busy: true,
      ready: new Promise((r) => {
        markReady = r;
      }),
      onDeath: null,
    };
    proc.on('message', (m: InstanceReply) => {
      if (m.type !== 'ready') return;
      markReady(
        m.ok
          ? null
          : { code: 'FUNCTION_ERROR', message: `init failed: ${m.error?.message}`, stack: m.error?.stack },
      );
    });
    const die = (error: InvokeError) => {
      p.instances = p.instances.filter((i) => i !== inst);
      markReady(error);
      inst.onDeath?.(error);
      inst.onDeath = null;
    };
    proc.on('error', (e) =>
      die({ code: 'FUNCTION_CRASHED', message: `instance crashed: ${e.message}`, stack: e.stack }),
    );
    proc.on('exit', (code, signal) =>
      die({
        code: 'FUNCTION_CRASHED',
        message: `instance exited with ${signal ? `signal ${signal}` : `code ${code}`}`,
      }),
    );
    p.instances.push(inst);
    return inst;
  }

  /** Kills an instance; resolves once the process is gone. */
  function stop(inst: Instance): Promise<void> {
    const { proc } = inst;
    if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
    return new Promise((done) => {
      proc.once('exit', () => done());
      proc.kill('SIGKILL');
    });
  }

  function acquire(name: string, p: Pool): Promise<{ inst: Instance; cold: boolean }> {
    const idle = p.instances.find((i) => !i.busy);
    if (idle) {
      idle.busy = true;
      return Promise.resolve({ inst: idle, cold: false });
    }
    if (p.instances.length < maxInstances) return Promise.resolve({ inst: spawn(name, p), cold: true });
    return new Promise((r) => p.waiting.push((inst) => r({ inst, cold: false })));
  }

  function release(name: string, p: Pool, inst: Instance): void {
    if (inst.retired && p.instances.includes(inst)) {
      p.instances = p.instances.filter((i) => i !== inst);
      void stop(inst);
    }
    const next = p.waiting.shift();
    if (!p.instances.includes(inst)) {
      // The instance died (timeout or crash): a queued call gets a fresh one.
      if (next && !closed) next(spawn(name, p));
      return;
    }
    if (next) next(inst);
    else inst.busy = false;
  }

  function invocationEnv(ctx: InvokeContext, requestId: string): Record<string, string | null> {
    const env: Record<string, string | null> = {
      // Listing every key keeps getWXContext() returning ENV and SOURCE even when no WX_*
      // value is set (timers, HTTP access); unset keys are skipped by the SDK.
      WX_CONTEXT_KEYS: CONTEXT_KEYS.map((k) => `WX_${k}`).join(','),
      TCB_ENV: ctx.ENV ?? envId,
      TCB_SOURCE: ctx.SOURCE ?? null,
      TCB_CONTEXT_CNFG: JSON.stringify({ URL: `${origin}/inv/${encodeURIComponent(requestId)}/admin` }),
    };
    for (const k of CONTEXT_KEYS) env[`WX_${k}`] = ctx[k] ?? null;
    return env;
  }

  async function invoke(name: string, event: unknown, ctx: InvokeContext = {}): Promise<InvokeResult> {
    if (closed) throw new Error('function runtime is closed');
    if (!has(name)) throw new FunctionNotFoundError(name);
    const p = pool(name);
    const requestId = randomUUID();
    const { inst, cold } = await acquire(name, p);
    let initMs: number | undefined;
    if (cold) {
      const t0 = performance.now();
      const initError = await inst.ready;
      initMs = Math.round(performance.now() - t0);
      if (initError) {
        p.instances = p.instances.filter((i) => i !== inst);
        void stop(inst);
        release(name, p, inst);
        log(`[fn] ${name} ${requestId.slice(0, 8)} ${initError.message}`);
        return {
          requestId,
          result: null,
          durationMs: 0,
          dbRequests: 0,
          coldStart: true,
          initMs,
          error: initError,
        };
      }
    }
    const started = performance.now();
    const timeoutS = p.config.timeout ?? DEFAULT_TIMEOUT_S;
    // The instance's getRemainingTimeInMillis() counts down to this (same machine, same clock).
    const deadline = Date.now() + timeoutS * 1000;
    const context = {
      request_id: requestId,
      function_name: name,
      function_version: '$LATEST',
      namespace: envId,
      memory_limit_in_mb: 256,
      time_limit_in_ms: timeoutS * 1000,
      callbackWaitsForEmptyEventLoop: false,
      environment: JSON.stringify(invocationEnv(ctx, requestId)),
    };

    const outcome = await new Promise<{ result: unknown; error?: InvokeError }>((settle) => {
      const timer = setTimeout(() => {
        inst.onDeath = null;
        settle({
          result: null,
          error: { code: 'FUNCTION_TIMEOUT', message: `Invoking task timed out after ${timeoutS} seconds` },
        });
        // A stuck instance cannot be trusted with the next call: replace it, as SCF does.
        p.instances = p.instances.filter((i) => i !== inst);
        void stop(inst);
      }, timeoutS * 1000);
      inst.onDeath = (error) => {
        clearTimeout(timer);
        settle({ result: null, error });
      };
      const onMessage = (reply: InstanceReply) => {
        if (reply.type !== 'result' || reply.id !== requestId) return;
        inst.proc.off('message', onMessage);
        clearTimeout(timer);
        inst.onDeath = null;
        if (reply.ok) settle({ result: reply.result });
        else
          settle({
            result: null,
            error: { code: 'FUNCTION_ERROR', message: reply.error.message, stack: reply.error.stack },
          });
      };
      inst.proc.on('message', onMessage);
      inst.proc.send({ id: requestId, event, context, deadline, env: invocationEnv(ctx, requestId) });
    });
    release(name, p, inst);

    const durationMs = Math.round((performance.now() - started) * 10) / 10;
    let dbRequests = 0;
    try {
      dbRequests = await takeCount(requestId);
    } catch {
      dbRequests = -1; // the emulator did not answer; say so rather than report zero
    }
    log(
      `[fn] ${name} ${requestId.slice(0, 8)} source=${ctx.SOURCE ?? '-'} openid=${ctx.OPENID ? 'yes' : 'no'} ${durationMs}ms db=${dbRequests}${cold ? ` cold(init ${initMs}ms)` : ''} ${outcome.error ? `${outcome.error.code}: ${outcome.error.message}` : 'ok'}`,
    );
    const res: InvokeResult = { requestId, result: outcome.result, durationMs, dbRequests, coldStart: cold };
    if (initMs !== undefined) res.initMs = initMs;
    if (outcome.error) res.error = outcome.error;
    return res;
  }

  function timers(): Record<string, TimerTrigger> {
    const out: Record<string, TimerTrigger> = {};
    if (!existsSync(functionsDir)) return out;
    for (const fn of readdirNames(functionsDir)) {
      if (!has(fn)) continue;
      const trigger = (readConfig(fn).triggers ?? []).find((t) => t.type === 'timer');
      if (trigger) out[fn] = trigger;
    }
    return out;
  }

  function fireTimer(name: string): Promise<InvokeResult> {
    const all = timers();
    const fn = all[name] ? name : Object.keys(all).find((f) => all[f]!.name === name);
    if (!fn) throw new FunctionNotFoundError(name);
    // Timer runs carry no user: SOURCE wx_trigger, no OPENID/APPID (reference §2).
    return invoke(fn, timerEvent(all[fn]!.name, now()), { SOURCE: 'wx_trigger' });
  }

  return {
    invoke,
    has,
    timers,
    fireTimer,
    startTimers() {
      if (crons.length > 0) return;
      for (const [fn, trigger] of Object.entries(timers())) {
        crons.push(
          parseTimerCron(trigger.config, () => {
            void fireTimer(fn).catch((e: Error) => log(`[timer] ${trigger.name} failed: ${e.message}`));
          }),
        );
      }
    },
    stopTimers() {
      for (const c of crons.splice(0)) c.stop();
    },
    instanceCount: (name) => pools.get(name)?.instances.length ?? 0,
    async reconfigure(env) {
      currentEnv = { ...env };
      const idle: Instance[] = [];
      for (const p of pools.values()) {
        for (const inst of p.instances) {
          inst.retired = true;
          if (!inst.busy) idle.push(inst);
        }
        p.instances = p.instances.filter((i) => i.busy);
      }
      await Promise.all(idle.map(stop));
    },
    runtime,
    node,
    async close() {
      closed = true;
      for (const c of crons.splice(0)) c.stop();
      const all = [...pools.values()].flatMap((p) => p.instances);
      pools.clear();
      await Promise.all(all.map(stop));
    },
  };
}

function readdirNames(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
}
