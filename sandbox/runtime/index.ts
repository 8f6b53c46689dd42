/**
 * Runs built cloud functions (dist/cloudfunctions/<fn>/index.js) the way CloudBase does.
 *
 * - Instances are worker threads: each has its own process.env, runs one invocation at a
 *   time, and stays warm between invocations. Under concurrency a function's pool grows up
 *   to `maxInstances`; further calls queue.
 * - The WX context goes where wx-server-sdk's getWXContext() reads it: WX_CONTEXT_KEYS plus
 *   WX_* variables, TCB_ENV and TCB_SOURCE (reference §2), set per invocation.
 * - Each invocation gets its own database URL (`<emulator>/inv/<invocationId>/admin` in
 *   TCB_CONTEXT_CNFG, which the node-sdk re-reads per request), so the emulator can count
 *   that invocation's database requests.
 * - config.json `timeout` (seconds, default 3) is enforced by terminating the instance.
 * - config.json timer triggers run on a 7-field cron in UTC+8.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Cron } from 'croner';
import { parseTimerCron, type TimerTrigger, timerEvent } from './timers';

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
  close(): Promise<void>;
}

export class FunctionNotFoundError extends Error {
  constructor(readonly functionName: string) {
    super(`function ${functionName} not found`);
  }
}

interface FunctionConfig {
  timeout?: number;
  envVariables?: Record<string, string>;
  triggers?: TimerTrigger[];
}

interface Instance {
  worker: Worker;
  busy: boolean;
  /** Resolves when the module is loaded: null, or why it failed to load. */
  ready: Promise<InvokeError | null>;
  /** Settles the invocation in flight when the worker dies under it. */
  onDeath: ((error: InvokeError) => void) | null;
}

interface Pool {
  config: FunctionConfig;
  instances: Instance[];
  waiting: ((inst: Instance) => void)[];
}

type WorkerReply =
  | { type: 'ready'; ok: boolean; error?: { message: string; stack: string } }
  | { type: 'result'; id: string; ok: true; result: unknown }
  | { type: 'result'; id: string; ok: false; error: { name: string; message: string; stack: string } };

const DEFAULT_TIMEOUT_S = 3;
const WORKER_FILE = fileURLToPath(new URL('./worker.cjs', import.meta.url));
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
  const nodePath = [PROJECT_NODE_MODULES, process.env['NODE_PATH'] ?? ''].filter(Boolean).join(':');
  const pools = new Map<string, Pool>();
  const crons: Cron[] = [];
  let closed = false;

  const indexPath = (name: string) => join(functionsDir, name, 'index.js');

  function has(name: string): boolean {
    return /^[A-Za-z][A-Za-z0-9_-]*$/.test(name) && existsSync(indexPath(name));
  }

  function readConfig(name: string): FunctionConfig {
    const path = join(functionsDir, name, 'config.json');
    return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as FunctionConfig) : {};
  }

  function pool(name: string): Pool {
    let p = pools.get(name);
    if (!p) {
      p = { config: readConfig(name), instances: [], waiting: [] };
      pools.set(name, p);
    }
    return p;
  }

  function spawn(name: string, p: Pool): Instance {
    const env: Record<string, string> = {
      PATH: process.env['PATH'] ?? '',
      // What an SCF container has; TENCENTCLOUD=true also stops the node-sdk probing
      // metadata.tencentyun.com, which does not exist here.
      TENCENTCLOUD_RUNENV: 'SCF',
      TENCENTCLOUD: 'true',
      TENCENTCLOUD_REGION: 'ap-shanghai',
      TENCENTCLOUD_SECRETID: 'local',
      TENCENTCLOUD_SECRETKEY: 'local',
      SCF_NAMESPACE: envId,
      SCF_FUNCTIONNAME: name,
      TCB_ENV: envId,
      TCB_CONTEXT_CNFG: JSON.stringify({ URL: options.serviceUrl }),
      ...(p.config.envVariables ?? {}),
      ...(options.env ?? {}),
    };
    const worker = new Worker(WORKER_FILE, {
      workerData: { indexPath: indexPath(name), nodePath },
      env,
      // Plain Node, like the platform: no TypeScript/test loaders inherited from the host.
      execArgv: [],
      stdout: true,
      stderr: true,
    });
    for (const stream of [worker.stdout, worker.stderr]) {
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
      worker,
      busy: true,
      ready: new Promise((r) => {
        markReady = r;
      }),
      onDeath: null,
    };
    worker.on('message', (m: WorkerReply) => {
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
    worker.on('error', (e) =>
      die({ code: 'FUNCTION_CRASHED', message: `instance crashed: ${e.message}`, stack: e.stack }),
    );
    worker.on('exit', (code) =>
      die({ code: 'FUNCTION_CRASHED', message: `instance exited with code ${code}` }),
    );
    p.instances.push(inst);
    return inst;
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
        void inst.worker.terminate();
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
        void inst.worker.terminate();
      }, timeoutS * 1000);
      inst.onDeath = (error) => {
        clearTimeout(timer);
        settle({ result: null, error });
      };
      const onMessage = (reply: WorkerReply) => {
        if (reply.type !== 'result' || reply.id !== requestId) return;
        inst.worker.off('message', onMessage);
        clearTimeout(timer);
        inst.onDeath = null;
        if (reply.ok) settle({ result: reply.result });
        else
          settle({
            result: null,
            error: { code: 'FUNCTION_ERROR', message: reply.error.message, stack: reply.error.stack },
          });
      };
      inst.worker.on('message', onMessage);
      inst.worker.postMessage({ id: requestId, event, context, env: invocationEnv(ctx, requestId) });
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
    async close() {
      closed = true;
      for (const c of crons.splice(0)) c.stop();
      const all = [...pools.values()].flatMap((p) => p.instances);
      pools.clear();
      await Promise.all(all.map((i) => i.worker.terminate()));
    },
  };
}

function readdirNames(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
}
