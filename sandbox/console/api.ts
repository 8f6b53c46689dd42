/**
 * The console's server side: `/console/api/*` on the gateway, calling the simulator and the
 * function runtime in-process. A browser cannot do this itself: the simulator speaks HTTPS
 * with a private CA the browser does not trust, and timers have no HTTP entrance at all.
 *
 * Shopper and merchant actions do NOT go through here: the page calls the functions through
 * `POST /functions/<name>` exactly as the mini-program does, so the console exercises the
 * same code paths. This is only the "WeChat side" and the sandbox controls.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decryptReqInfo, parseXml } from '../../cloudfunctions/shared/wxpay';
import type { Stack } from '../stack';
import type { Faults, NotifyRecord, PayOutcome } from '../wxpay';

export const CONSOLE_API_PREFIX = '/console/api/';

/** A second shopper, so the console can show that one shopper never sees another's orders. */
export const SECOND_SHOPPER_OPENID = 'o_shopper_two';

export interface ConsoleApiOptions {
  /** The simulator's time scale, shown on the page so the timings are not a surprise. */
  timeScale: number;
}

/** What the page gets from `GET /console/api/info`. Never the API key or the certificates. */
export interface ConsoleInfo {
  shoppers: { openid: string; label: string }[];
  adminOpenid: string;
  merchant: { appid: string; mchid: string; signType: string };
  urls: { console: string; gateway: string; tcbService: string; wxpay: string };
  timeScale: number;
  refundSettleSeconds: number;
  notifyRetryFirstSeconds: number;
}

/** A notify attempt as the page shows it: which order or refund, and what the shop replied. */
export interface NotifyView {
  id: string;
  kind: 'pay' | 'refund';
  attempt: number;
  timeMs: number;
  /** out_trade_no (pay) or out_refund_no (refund, from the decrypted req_info). */
  subject: string;
  /** result_code for pay, refund_status for refund. */
  result: string;
  dropped: boolean;
  duplicate: boolean;
  acknowledged: boolean;
  replyStatus?: number;
  /** return_code/return_msg of the shop's XML reply, or the transport error. */
  reply: string;
}

const PAY_OUTCOMES: readonly PayOutcome[] = ['SUCCESS', 'CANCEL', 'FAIL'];

/** The faults the page may switch, with the values it may set; anything else is refused. */
const FAULT_CHECKS: { [K in keyof Faults]?: (v: unknown) => boolean } = {
  dropPayNotifies: (v) => typeof v === 'boolean',
  dropRefundNotifies: (v) => typeof v === 'boolean',
  systemErrorRate: (v) => typeof v === 'number' && v >= 0 && v <= 1,
  refundOutcome: (v) => v === 'SUCCESS' || v === 'REFUNDCLOSE' || v === 'CHANGE',
  refundError: (v) => v === null || v === 'NOTENOUGH',
};

class BadRequest extends Error {}

export function describeNotify(n: NotifyRecord, apiKey: string): NotifyView {
  let subject = '';
  let result = '';
  try {
    const p = parseXml(n.body);
    if (n.kind === 'pay') {
      subject = p['out_trade_no'] ?? '';
      result = p['result_code'] ?? '';
    } else {
      // Refund notifies carry their facts only inside the encrypted req_info.
      const inner = decryptReqInfo(p['req_info'] ?? '', apiKey);
      subject = inner['out_refund_no'] ?? '';
      result = inner['refund_status'] ?? '';
    }
  } catch {
    result = 'unreadable';
  }
  let reply = n.error ?? '';
  if (n.replyBody !== undefined) {
    try {
      const r = parseXml(n.replyBody);
      reply = [r['return_code'], r['return_msg']].filter(Boolean).join(' ') || n.replyBody.slice(0, 80);
    } catch {
      reply = n.replyBody.slice(0, 80);
    }
  }
  return {
    id: n.id,
    kind: n.kind,
    attempt: n.attempt,
    timeMs: n.timeMs,
    subject,
    result,
    dropped: n.dropped === true,
    duplicate: n.duplicate === true,
    acknowledged: n.acknowledged,
    ...(n.replyStatus !== undefined ? { replyStatus: n.replyStatus } : {}),
    reply,
  };
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > 64 * 1024) throw new BadRequest('body too large');
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  const v: unknown = JSON.parse(text);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BadRequest('body must be an object');
  return v as Record<string, unknown>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    // Live state: the page polls and must never see a cached answer.
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** A gateway request hook serving `/console/api/*`; other paths fall through (false). */
export function consoleApi(
  stack: Stack,
  options: ConsoleApiOptions,
): (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean> {
  const { info, simulator, runtime } = stack;
  const consoleInfo: ConsoleInfo = {
    shoppers: [
      { openid: info.shopperOpenid, label: '顾客 A Shopper A' },
      { openid: SECOND_SHOPPER_OPENID, label: '顾客 B Shopper B' },
    ],
    adminOpenid: info.adminOpenid,
    merchant: { appid: info.merchant.appid, mchid: info.merchant.mchid, signType: info.merchant.signType },
    urls: {
      console: info.consoleUrl,
      gateway: info.gatewayUrl,
      tcbService: info.tcbServiceUrl,
      wxpay: info.wxpayBaseUrl,
    },
    timeScale: options.timeScale,
    refundSettleSeconds: 60 * options.timeScale,
    notifyRetryFirstSeconds: 15 * options.timeScale,
  };

  const routes: Record<string, (body: Record<string, unknown>) => Promise<unknown> | unknown> = {
    'GET info': () => consoleInfo,
    // What wx.requestPayment does on the phone, with the user's choice in the cashier.
    'POST pay': (body) => {
      const outcome = (body['outcome'] ?? 'SUCCESS') as PayOutcome;
      if (!PAY_OUTCOMES.includes(outcome)) throw new BadRequest(`outcome must be one of ${PAY_OUTCOMES}`);
      if (typeof body['payment'] !== 'object' || body['payment'] === null)
        throw new BadRequest('payment (as createOrder returned it) is required');
      return simulator.pay(body['payment'] as Record<string, unknown>, outcome);
    },
    'GET faults': () => simulator.faults(),
    'POST faults': (body) => {
      const patch: Partial<Faults> = {};
      for (const [k, v] of Object.entries(body)) {
        const check = FAULT_CHECKS[k as keyof Faults];
        if (!check?.(v)) throw new BadRequest(`fault ${k} cannot be set to ${JSON.stringify(v)}`);
        (patch as Record<string, unknown>)[k] = v;
      }
      return simulator.setFaults(patch);
    },
    'GET notifies': () =>
      simulator
        .notifies()
        .map((n) => describeNotify(n, info.merchant.apiKey))
        .reverse(),
    // The timer trigger, fired now instead of at the next 5-minute mark.
    'POST reconcile': async () => {
      const out = await runtime.fireTimer('reconcile');
      if (out.error) throw new Error(`reconcile failed: ${out.error.message}`);
      await simulator.flushNotifies();
      return { report: out.result, durationMs: out.durationMs };
    },
    // WeChat finishing the refunds it accepted, without waiting for the settle delay.
    'POST settle': async () => {
      const settled = simulator.settleRefunds();
      await simulator.flushNotifies();
      return { settled };
    },
  };

  return async (req, res, url) => {
    if (!url.pathname.startsWith(CONSOLE_API_PREFIX)) return false;
    const route = routes[`${req.method} ${url.pathname.slice(CONSOLE_API_PREFIX.length)}`];
    if (!route) {
      send(res, 404, { error: `no console route ${req.method} ${url.pathname}` });
      return true;
    }
    try {
      const body = req.method === 'POST' ? await readJson(req) : {};
      send(res, 200, await route(body));
    } catch (e) {
      const bad = e instanceof BadRequest || e instanceof SyntaxError;
      send(res, bad ? 400 : 500, { error: (e as Error).message });
    }
    return true;
  };
}
