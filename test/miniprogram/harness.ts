/**
 * Loads the real mini-program pages into miniprogram-simulate (j-component on jsdom) with a
 * fake `wx`. Test files using it need `// @vitest-environment jsdom`.
 *
 * DevTools compiles each page's .ts itself; here esbuild bundles each page (with its utils and
 * services) to CommonJS next to a copy of its .json/.wxml/.wxss, and simulate loads that copy
 * with the official wcc compiler, so the WXML is compiled the way DevTools would.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import simulate from 'miniprogram-simulate';
import type {
  ApiError,
  FunctionMap,
  FunctionName,
  OrderView,
  RefundView,
  RequestPaymentParams,
  Result,
} from '../../cloudfunctions/shared/contract';

const SOURCE = resolve(__dirname, '../../miniprogram');

export const PAGES = readdirSync(join(SOURCE, 'pages'));

const ESBUILD = resolve(__dirname, '../../node_modules/.bin/esbuild');

/**
 * Compiles the mini-program into a temp folder; returns it and a cleanup.
 * esbuild runs as a child process: its JS API refuses to start under jsdom, whose
 * TextEncoder returns a Uint8Array from another realm.
 */
export function buildMiniprogram(): { root: string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'miniprogram-'));
  cpSync(SOURCE, root, { recursive: true, filter: (src) => !src.endsWith('.ts') });
  execFileSync(ESBUILD, [
    ...PAGES.map((p) => join(SOURCE, 'pages', p, 'index.ts')),
    `--outbase=${join(SOURCE, 'pages')}`,
    `--outdir=${join(root, 'pages')}`,
    '--bundle',
    '--format=cjs',
    '--platform=neutral',
    '--target=es2020',
    '--log-level=warning',
  ]);
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

// ---- the fake wx ----

type Handler<N extends FunctionName> = (
  data: FunctionMap[N][0],
) => Result<FunctionMap[N][1]> | Promise<Result<FunctionMap[N][1]>>;
type Backend = { [N in FunctionName]?: Handler<N> };

export interface Call {
  name: FunctionName;
  data: unknown;
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

type Callbacks = {
  success?: (res: { errMsg: string }) => void;
  fail?: (res: { errMsg: string }) => void;
  complete?: (res: { errMsg: string }) => void;
};

export class FakeWx {
  /** Function name → handler answering with the §6 envelope. Missing → callFunction fails. */
  backend: Backend = {};
  readonly calls: Call[] = [];
  /** What the page passed to wx.requestPayment, callbacks left out. */
  readonly payments: Record<string, unknown>[] = [];
  /** What the cashier answers: 'requestPayment:ok', 'requestPayment:fail cancel', … */
  paymentErrMsg = 'requestPayment:ok';
  /** Hook run when the shopper "pays", e.g. to mark the order PAID on the fake server. */
  onPay: (() => void) | null = null;
  readonly toasts: string[] = [];
  readonly modals: { title: string; content: string; confirmText?: string }[] = [];
  /** What the user taps in the next confirmation dialogs (showModal), in order; then confirm. */
  readonly modalAnswers: boolean[] = [];
  /** The `events` each navigateTo gave the new page's channel, by URL: call them as that page would. */
  readonly openerEvents: { url: string; events: Record<string, (...args: unknown[]) => void> }[] = [];
  readonly navigations: { method: string; url: string }[] = [];
  /** What the page put on the clipboard with wx.setClipboardData. */
  readonly clipboard: string[] = [];
  stopPullDownRefreshCount = 0;
  /** Set by navigateTo's `success`: what the page emitted on the new page's channel. */
  readonly emitted: { event: string; args: unknown[] }[] = [];

  callsOf(name: FunctionName): unknown[] {
    return this.calls.filter((c) => c.name === name).map((c) => c.data);
  }

  /** Everything a user was told in a toast or modal. */
  get told(): string {
    return [...this.toasts, ...this.modals.flatMap((m) => [m.title, m.content])].join('\n');
  }

  install(): void {
    const wx = (globalThis as unknown as { wx: Record<string, unknown> }).wx;
    const callback = (opts: Callbacks, ok: boolean, errMsg: string) => {
      const res = { errMsg };
      if (ok) opts.success?.(res);
      else opts.fail?.(res);
      opts.complete?.(res);
    };
    Object.assign(wx, {
      cloud: {
        init: () => undefined,
        callFunction: async ({ name, data }: { name: FunctionName; data: unknown }) => {
          this.calls.push({ name, data });
          const handler = this.backend[name] as ((d: unknown) => unknown) | undefined;
          if (!handler) throw { errMsg: `cloud.callFunction:fail function ${name} not found` };
          return { result: await handler(data), errMsg: 'cloud.callFunction:ok', requestID: 'req' };
        },
      },
      requestPayment: (opts: RequestPaymentParams & Callbacks) => {
        const { success: _s, fail: _f, complete: _c, ...params } = opts;
        this.payments.push(params);
        const errMsg = this.paymentErrMsg;
        // The cashier answers later, like the real one.
        void Promise.resolve().then(() => {
          if (errMsg === 'requestPayment:ok') this.onPay?.();
          callback(opts, errMsg === 'requestPayment:ok', errMsg);
        });
      },
      showToast: (opts: { title: string } & Callbacks) => {
        this.toasts.push(opts.title);
        callback(opts, true, 'showToast:ok');
      },
      showModal: (
        opts: { title?: string; content?: string; confirmText?: string } & Omit<Callbacks, 'success'> & {
            success?: (res: { errMsg: string; confirm: boolean; cancel: boolean }) => void;
          },
      ) => {
        this.modals.push({
          title: opts.title ?? '',
          content: opts.content ?? '',
          ...(opts.confirmText ? { confirmText: opts.confirmText } : {}),
        });
        const confirm = this.modalAnswers.shift() ?? true;
        const res = { errMsg: 'showModal:ok', confirm, cancel: !confirm };
        opts.success?.(res);
        opts.complete?.(res);
      },
      setClipboardData: (opts: { data: string } & Callbacks) => {
        this.clipboard.push(opts.data);
        // The real one shows its own "内容已复制" toast.
        callback(opts, true, 'setClipboardData:ok');
      },
      showLoading: () => undefined,
      hideLoading: () => undefined,
      stopPullDownRefresh: () => {
        this.stopPullDownRefreshCount++;
      },
      navigateTo: (
        opts: {
          url: string;
          events?: Record<string, (...args: unknown[]) => void>;
          success?: (res: { eventChannel: { emit: (e: string, ...a: unknown[]) => void } }) => void;
        } & Callbacks,
      ) => {
        this.navigations.push({ method: 'navigateTo', url: opts.url });
        if (opts.events) this.openerEvents.push({ url: opts.url, events: opts.events });
        opts.success?.({ eventChannel: { emit: (event, ...args) => this.emitted.push({ event, args }) } });
      },
      redirectTo: (opts: { url: string }) => this.navigations.push({ method: 'redirectTo', url: opts.url }),
      navigateBack: () => this.navigations.push({ method: 'navigateBack', url: '' }),
    });
  }
}

export function ok<T>(data: T): Result<T> {
  return { ok: true, data };
}
export function fail<T = never>(code: ApiError['code'], message = 'from the fake server'): Result<T> {
  return { ok: false, error: { code, message } };
}

// ---- driving a page ----

type Instance = Record<string, unknown>;

export class PageDriver {
  private constructor(private readonly comp: ReturnType<typeof simulate.render>) {}

  static open(root: string, page: string): PageDriver {
    // rootPath = the whole mini-program: wcc then compiles every page in one go. Compiling
    // page by page (the default, rootPath = the page folder) lets wcc's generated globals of
    // one page leak into the next, which then renders another page's template.
    const id = simulate.load(join(root, 'pages', page, 'index'), { rootPath: root });
    const comp = simulate.render(id);
    // jsdom's document; the root tsconfig has no DOM lib, so reach it through globalThis.
    const doc = (globalThis as unknown as { document: { createElement(tag: string): unknown } }).document;
    comp.attach(doc.createElement('parent-wrapper') as Parameters<typeof comp.attach>[0]);
    return new PageDriver(comp);
  }

  /**
   * Gives the page the channel a page opened with navigateTo({events}) has; returns what the
   * page emits on it.
   */
  openerChannel(): { event: string; args: unknown[] }[] {
    const emitted: { event: string; args: unknown[] }[] = [];
    this.instance['getOpenerEventChannel'] = () => ({
      emit: (event: string, ...args: unknown[]) => emitted.push({ event, args }),
      on: () => undefined,
    });
    return emitted;
  }

  get data(): Record<string, unknown> {
    return this.comp.data as Record<string, unknown>;
  }

  get instance(): Instance {
    return this.comp.instance as unknown as Instance;
  }

  /** Calls a page method (onLoad, onShow, onPullDownRefresh, …) and lets every pending promise run. */
  async run(method: string, ...args: unknown[]): Promise<void> {
    const fn = this.instance[method];
    if (typeof fn !== 'function') throw new Error(`page has no method ${method}`);
    await fn.apply(this.instance, args);
    await settle();
  }

  private node(selector: string) {
    const node = this.comp.querySelector(selector);
    if (!node) throw new Error(`nothing matches ${selector}`);
    return node;
  }

  /** Taps without waiting, as a finger would; call settle() to let the handlers finish. */
  tapNow(selector: string, index = 0): void {
    const nodes = this.comp.querySelectorAll(selector);
    const node = nodes[index];
    if (!node) throw new Error(`nothing matches ${selector} [${index}]`);
    node.dispatchEvent('tap');
  }

  async tap(selector: string, index = 0): Promise<void> {
    this.tapNow(selector, index);
    await settle();
  }

  async type(selector: string, value: string): Promise<void> {
    this.node(selector).dispatchEvent('input', { detail: { value, cursor: value.length } });
    await settle();
  }

  has(selector: string): boolean {
    return this.comp.querySelector(selector) !== undefined;
  }

  count(selector: string): number {
    return this.comp.querySelectorAll(selector).length;
  }

  text(selector: string): string {
    return (this.node(selector).dom?.textContent ?? '').trim();
  }

  /** The text of every match, in page order. */
  texts(selector: string): string[] {
    return this.comp.querySelectorAll(selector).map((n) => (n.dom?.textContent ?? '').trim());
  }

  /** All text of the page, as the user reads it. */
  get pageText(): string {
    return this.comp.dom?.textContent ?? '';
  }
}

/** Lets queued promise callbacks (fake server, cashier, setData) run to the end. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setTimeout(r, 0));
}

// ---- fixtures ----

const T0 = Date.UTC(2025, 4, 1, 2, 0); // 2025-05-01 10:00 Beijing time

export function anOrder(over: Partial<OrderView> = {}): OrderView {
  return {
    orderId: 'o-1001',
    status: 'NOTPAY',
    totalFee: 3980,
    items: [{ productId: 'tea', name: '明前龙井', priceFen: 1990, quantity: 2 }],
    description: '明前龙井 ×2',
    createdAtMs: T0,
    // Still payable whenever the test runs: 30 minutes from now.
    expiresAtMs: Date.now() + 1_800_000,
    refundReservedFee: 0,
    refundedFee: 0,
    refundableFee: 0,
    payable: true,
    ...over,
  };
}

export function aPaidOrder(over: Partial<OrderView> = {}): OrderView {
  return anOrder({
    status: 'PAID',
    paidAtMs: T0 + 60_000,
    transactionId: '4200000001',
    refundableFee: 3980,
    payable: false,
    ...over,
  });
}

export function aRefund(over: Partial<RefundView> = {}): RefundView {
  return {
    refundId: 'r-2001',
    orderId: 'o-1001',
    refundFee: 1990,
    totalFee: 3980,
    reason: '买多了',
    status: 'PENDING_REVIEW',
    createdAtMs: T0 + 3_600_000,
    updatedAtMs: T0 + 3_600_000,
    ...over,
  };
}

export const PAYMENT: RequestPaymentParams = {
  timeStamp: '1746064800',
  nonceStr: 'n0nce5tr1ng',
  package: 'prepay_id=wx01100000abcdef',
  signType: 'HMAC-SHA256',
  paySign: 'A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F90',
};
