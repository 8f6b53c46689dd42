/**
 * Delivers pay and refund notifies the way WeChat does: POST XML, success only when the
 * reply is XML with return_code SUCCESS, otherwise retry on the official schedule
 * "15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h - 总计 24h4m"
 * (https://pay.weixin.qq.com/doc/v2/merchant/4011937248), scaled by `timeScale`.
 */
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { rootCertificates } from 'node:tls';
import { parseXml } from '../../cloudfunctions/shared/wxpay';
import type { Ledger, NotifyTransport, PendingNotify } from './ledger';

/** Seconds between attempt n and n+1; 15 retries after the first attempt. */
export const NOTIFY_RETRY_SCHEDULE_S = [
  15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
] as const;

/** WeChat gives up on a reply that takes longer than this ("请在5秒内应答"). */
const REPLY_TIMEOUT_MS = 5000;

export interface NotifyRecord {
  id: string;
  kind: 'pay' | 'refund';
  url: string;
  /** APIv2 XML over HTTP when absent. */
  transport?: NotifyTransport;
  attempt: number;
  body: string;
  timeMs: number;
  /** An extra copy sent by the duplicateNotifies fault (never retried itself). */
  duplicate?: boolean;
  /** Not sent at all, because of the dropPayNotifies/dropRefundNotifies fault. */
  dropped?: boolean;
  replyStatus?: number;
  replyBody?: string;
  error?: string;
  acknowledged: boolean;
}

/**
 * Delivers one attempt of a notify that is not APIv2 XML (see `PendingNotify.transport`) and
 * says whether the receiver acknowledged it by that transport's rule.
 */
export type NotifyDelivery = (
  n: PendingNotify,
) => Promise<{ status?: number; body: string; acknowledged: boolean }>;

export interface NotifyFaults {
  dropPayNotifies: boolean;
  dropRefundNotifies: boolean;
  notifyDelayMs: number;
  duplicateNotifies: number;
  reorderNotifies: boolean;
}

export class Notifier {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly agent: https.Agent;
  private closed = false;

  constructor(
    private readonly ledger: Ledger,
    private readonly opts: {
      timeScale: number;
      now: () => number;
      caPem?: string;
      faults: () => NotifyFaults;
      /** Senders for the other transports (APIv3, cloudPay's function callbacks). */
      transports?: Partial<Record<NotifyTransport, NotifyDelivery>>;
    },
  ) {
    this.agent = new https.Agent({ ca: opts.caPem ? [...rootCertificates, opts.caPem] : undefined });
    // Deliveries owed before a restart resume on their schedule.
    for (const n of ledger.pending.values()) if (!n.held) this.arm(n);
  }

  /** Every attempt with the shop's reply; kept in the ledger, so a restart does not empty it. */
  get records(): NotifyRecord[] {
    return this.ledger.notifyLog;
  }

  enqueue(kind: 'pay' | 'refund', url: string, body: string, transport?: NotifyTransport): void {
    const f = this.opts.faults();
    const id = randomBytes(8).toString('hex');
    if ((kind === 'pay' && f.dropPayNotifies) || (kind === 'refund' && f.dropRefundNotifies)) {
      this.records.push({
        id,
        kind,
        url,
        ...(transport ? { transport } : {}),
        attempt: 1,
        body,
        timeMs: this.opts.now(),
        dropped: true,
        acknowledged: false,
      });
      this.ledger.save();
      return;
    }
    const n: PendingNotify = {
      id,
      kind,
      url,
      body,
      ...(transport ? { transport } : {}),
      attempt: 1,
      dueAtMs: Date.now() + f.notifyDelayMs,
      held: f.reorderNotifies || undefined,
    };
    this.ledger.pending.set(id, n);
    this.ledger.save();
    if (!n.held) this.arm(n);
    // "通知发送可能会多台服务器进行发送，且发送时间可能会在几秒内": copies in parallel.
    for (let i = 0; i < f.duplicateNotifies; i++) {
      setTimeout(() => void this.attempt(n, { duplicate: true }), f.notifyDelayMs).unref();
    }
  }

  /** Sends every pending attempt now (held ones newest first, one after the other) and waits. */
  async flush(): Promise<void> {
    const all = [...this.ledger.pending.values()];
    const held = all.filter((n) => n.held).reverse();
    const ready = all.filter((n) => !n.held && !this.inFlight.has(n.id));
    for (const n of ready) this.disarm(n.id);
    const sends = ready.map((n) => this.attempt(n));
    for (const n of held) {
      n.held = undefined;
      await this.attempt(n);
    }
    await Promise.all([...sends, ...this.inFlight.values()]);
  }

  /** Called when the reorder fault is lifted: what was held goes out, newest first. */
  releaseHeld(): void {
    const held = [...this.ledger.pending.values()].filter((n) => n.held).reverse();
    void (async () => {
      for (const n of held) {
        n.held = undefined;
        await this.attempt(n);
      }
    })();
  }

  clear(): void {
    for (const id of [...this.timers.keys()]) this.disarm(id);
    this.records.length = 0;
  }

  close(): void {
    this.closed = true;
    for (const id of [...this.timers.keys()]) this.disarm(id);
    this.agent.destroy();
  }

  private arm(n: PendingNotify): void {
    this.disarm(n.id);
    const t = setTimeout(
      () => {
        this.timers.delete(n.id);
        void this.attempt(n);
      },
      Math.max(0, n.dueAtMs - Date.now()),
    );
    t.unref();
    this.timers.set(n.id, t);
  }

  private disarm(id: string): void {
    const t = this.timers.get(id);
    if (t) clearTimeout(t);
    this.timers.delete(id);
  }

  private attempt(n: PendingNotify, opts: { duplicate?: boolean } = {}): Promise<void> {
    if (!opts.duplicate) {
      const running = this.inFlight.get(n.id);
      if (running) return running;
    }
    const p = this.send(n, opts.duplicate === true).finally(() => {
      if (!opts.duplicate) this.inFlight.delete(n.id);
    });
    if (!opts.duplicate) this.inFlight.set(n.id, p);
    return p;
  }

  private async send(n: PendingNotify, duplicate: boolean): Promise<void> {
    if (this.closed || (!duplicate && !this.ledger.pending.has(n.id))) return;
    const rec: NotifyRecord = {
      id: n.id,
      kind: n.kind,
      url: n.url,
      ...(n.transport ? { transport: n.transport } : {}),
      attempt: n.attempt,
      body: n.body,
      timeMs: this.opts.now(),
      acknowledged: false,
      ...(duplicate ? { duplicate: true } : {}),
    };
    this.records.push(rec);
    try {
      if (n.transport) {
        const deliver = this.opts.transports?.[n.transport];
        if (!deliver) throw new Error(`no sender for ${n.transport} notifies`);
        const reply = await deliver(n);
        if (reply.status !== undefined) rec.replyStatus = reply.status;
        rec.replyBody = reply.body;
        rec.acknowledged = reply.acknowledged;
      } else {
        const reply = await this.post(n.url, n.body);
        rec.replyStatus = reply.status;
        rec.replyBody = reply.body;
        rec.acknowledged = isSuccessReply(reply.body);
      }
    } catch (e) {
      rec.error = (e as Error).message;
    }
    if (duplicate || this.closed || !this.ledger.pending.has(n.id)) {
      if (!this.closed) this.ledger.save();
      return;
    }
    if (rec.acknowledged || n.attempt > NOTIFY_RETRY_SCHEDULE_S.length) {
      // Acknowledged, or the schedule (24h4m) is exhausted: WeChat stops either way.
      this.ledger.pending.delete(n.id);
    } else {
      n.dueAtMs = Date.now() + NOTIFY_RETRY_SCHEDULE_S[n.attempt - 1]! * 1000 * this.opts.timeScale;
      n.attempt += 1;
      this.arm(n);
    }
    this.ledger.save();
  }

  /** One POST as WeChat's notify servers make it (5 s reply deadline, the simulator's CA trusted). */
  post(
    url: string,
    body: string,
    headers: Record<string, string> = { 'content-type': 'text/xml; charset=utf-8' },
  ): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const u = new URL(url);
      const mod = u.protocol === 'https:' ? https : http;
      const req = mod.request(u, {
        method: 'POST',
        agent: u.protocol === 'https:' ? this.agent : undefined,
        headers: { ...headers, 'user-agent': 'Mozilla/4.0 (wxpay simulator)' },
        timeout: REPLY_TIMEOUT_MS,
      });
      req.on('timeout', () => req.destroy(new Error(`no reply within ${REPLY_TIMEOUT_MS} ms`)));
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
      });
      req.end(body);
    });
  }
}

/** Only XML with return_code SUCCESS stops the retries; "success", JSON or HTTP 200 alone do not. */
export function isSuccessReply(body: string): boolean {
  try {
    return parseXml(body)['return_code'] === 'SUCCESS';
  } catch {
    return false;
  }
}
