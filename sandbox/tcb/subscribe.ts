/**
 * Subscribe messages (订阅消息 / 服务通知) in the emulator: what WeChat does between the
 * mini-program's `wx.requestSubscribeMessage` and the server's `subscribeMessage.send`.
 *
 * - The merchant's templates (picked in the mini-program admin console) are given at start:
 *   id, title and keywords.
 * - Each accepted template in a subscribe prompt is one acceptance for that user and template
 *   (one-time subscriptions add up); each delivered message uses one. Without one, WeChat
 *   answers 43101 "user refuse to accept the msg".
 * - A delivered message lands in the user's inbox (服务通知) with its text as the phone shows it.
 * - Values are checked against the documented value rules (47003), the page against the
 *   mini-program's pages (41030), the template id (40037) and the openid (40003).
 *
 * Control routes under /_emulator/subscribe/ let the sandbox's mini-program side (the console,
 * tests) answer prompts, read inboxes and inject transient failures.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { type WxJson, wxError } from './openapi';

export interface SubscribeTemplate {
  /** The template id the admin console shows (模板ID). */
  id: string;
  /** 模板标题, e.g. 退款申请通知 */
  title: string;
  /** The template's fields in order: `{{thing3.DATA}}` is `{ key: 'thing3', name: '退款原因' }`. */
  keywords: { key: string; name: string }[];
}

export interface SubscribeOptions {
  templates?: SubscribeTemplate[];
  /** The mini-program's pages (app.json); a notice's page must be one of them. Omitted: any. */
  pages?: string[];
  /** Keep acceptances and inboxes in `<dataDir>/subscribe.json`. */
  dataDir?: string;
  now?: () => number;
}

export interface InboxMessage {
  msgId: string;
  openid: string;
  templateId: string;
  title: string;
  page?: string;
  miniprogramState: string;
  lang: string;
  /** keyword → value, as sent. */
  data: Record<string, string>;
  /** The card as the phone shows it: title, then one line per field (name: value). */
  text: string;
  atMs: number;
}

export type SubscribeAnswer = 'accept' | 'reject';

/** What wx.requestSubscribeMessage resolves or rejects with. */
export type RequestSubscribeResult =
  | ({ errMsg: 'requestSubscribeMessage:ok' } & Record<string, string>)
  | { errMsg: string; errCode: number };

export interface SubscribeFaults {
  /** The next n sends fail with `errcode` before anything else is checked. */
  failNext: number;
  errcode: number;
  errmsg: string;
  /** Every send is answered this much later (WeChat slow); the message is delivered at once. */
  delayMs: number;
}

interface State {
  /** openid → templateId → acceptances left */
  acceptances: Record<string, Record<string, number>>;
  inboxes: Record<string, InboxMessage[]>;
  seq: number;
}

const OPENID = /^[A-Za-z0-9_-]{6,64}$/;

// ---- WeChat's value rules, as the platform checks them (counted in characters) ----

const HAN = /\p{Script=Han}/u;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function chars(s: string): number {
  return Array.from(s).length;
}

/** Whether WeChat would take `value` for a keyword of this type (47003 otherwise). */
export function acceptsValue(keyword: string, value: unknown): boolean {
  if (typeof value !== 'string' && typeof value !== 'number') return false;
  const v = String(value);
  if (v.trim() === '' || CONTROL.test(v)) return false;
  const type = keyword.replace(/\d+$/, '');
  switch (type) {
    case 'thing':
      return chars(v) <= 20;
    case 'number':
      return /^\d+(\.\d+)?$/.test(v) && v.replace('.', '').length <= 32;
    case 'letter':
      return /^[A-Za-z]{1,32}$/.test(v);
    case 'symbol':
      return chars(v) <= 5 && !/[\p{L}\p{N}\s]/u.test(v);
    case 'character_string':
      return chars(v) <= 32 && /^[\x21-\x7e]+$/.test(v);
    case 'time':
      return /^((\d{4}年)?\d{1,2}月\d{1,2}日 |\d{4}[-/.]\d{1,2}[-/.]\d{1,2} )?\d{1,2}:\d{2}(:\d{2})?(~.+)?$/.test(
        v,
      );
    case 'date':
      return /^((\d{4}年)?\d{1,2}月\d{1,2}日|\d{4}年\d{1,2}月|\d{4}[-/.]\d{1,2}([-/.]\d{1,2})?)( \d{1,2}:\d{2}(:\d{2})?)?(~.+)?$/.test(
        v,
      );
    case 'amount':
      return /^[¥￥$€£]?\d{1,10}(\.\d+)?元?$/.test(v);
    case 'phone_number':
      return chars(v) <= 17 && /^[\d+\-()#* ]+$/.test(v);
    case 'name':
      return HAN.test(v) ? chars(v) <= 10 : chars(v) <= 20 && !/\d/.test(v);
    case 'phrase':
      return chars(v) <= 5 && Array.from(v).every((c) => HAN.test(c));
    case 'car_number':
      return chars(v) <= 8;
    default:
      return chars(v) <= 20;
  }
}

export class SubscribeService {
  private readonly templates = new Map<string, SubscribeTemplate>();
  private readonly pages: Set<string> | undefined;
  private readonly file: string | undefined;
  private readonly now: () => number;
  private state: State = { acceptances: {}, inboxes: {}, seq: 0 };
  private faults: SubscribeFaults = { failNext: 0, errcode: -1, errmsg: 'system error', delayMs: 0 };

  constructor(options: SubscribeOptions = {}) {
    for (const t of options.templates ?? []) this.templates.set(t.id, t);
    this.pages = options.pages ? new Set(options.pages.map((p) => p.replace(/^\//, ''))) : undefined;
    this.now = options.now ?? Date.now;
    if (options.dataDir) {
      this.file = join(options.dataDir, 'subscribe.json');
      if (existsSync(this.file)) this.state = JSON.parse(readFileSync(this.file, 'utf8')) as State;
    }
  }

  private save(): void {
    if (!this.file) return;
    writeFileSync(`${this.file}.tmp`, JSON.stringify(this.state));
    renameSync(`${this.file}.tmp`, this.file);
  }

  listTemplates(): SubscribeTemplate[] {
    return [...this.templates.values()];
  }

  /** `count` more acceptances of `templateId` for `openid` (each lets one message through). */
  grant(openid: string, templateId: string, count = 1): number {
    if (!this.templates.has(templateId)) throw new Error(`unknown template ${templateId}`);
    const mine = this.state.acceptances[openid] ?? {};
    mine[templateId] = (mine[templateId] ?? 0) + Math.max(0, Math.floor(count));
    this.state.acceptances[openid] = mine;
    this.save();
    return mine[templateId]!;
  }

  acceptances(openid: string): Record<string, number> {
    return { ...(this.state.acceptances[openid] ?? {}) };
  }

  /**
   * The subscribe prompt of wx.requestSubscribeMessage, answered by `answer` (one answer for
   * all, or per template id). At most 3 ids; same-titled templates after the first are
   * 'filter'ed, as WeChat does.
   */
  request(
    openid: string,
    tmplIds: unknown,
    answer: SubscribeAnswer | Record<string, SubscribeAnswer> = 'accept',
  ): RequestSubscribeResult {
    const fail = (errCode: number, msg: string) => ({
      errMsg: `requestSubscribeMessage:fail ${msg}`,
      errCode,
    });
    if (!Array.isArray(tmplIds) || tmplIds.length === 0) return fail(10001, "TmplIds can't be empty");
    if (tmplIds.length > 3) return fail(20003, 'Templates count out of max bounds');
    if (!tmplIds.every((id) => typeof id === 'string' && this.templates.has(id))) {
      return fail(20001, 'No template data return, verify the template id exist');
    }
    const result: Record<string, string> = { errMsg: 'requestSubscribeMessage:ok' };
    const titles = new Set<string>();
    for (const id of tmplIds as string[]) {
      const t = this.templates.get(id)!;
      if (titles.has(t.title)) {
        result[id] = 'filter';
        continue;
      }
      titles.add(t.title);
      const a = typeof answer === 'string' ? answer : (answer[id] ?? 'reject');
      result[id] = a;
      if (a === 'accept') this.grant(openid, id, 1);
    }
    return result as RequestSubscribeResult;
  }

  inbox(openid: string): InboxMessage[] {
    return [...(this.state.inboxes[openid] ?? [])];
  }

  inboxes(): Record<string, InboxMessage[]> {
    return structuredClone(this.state.inboxes);
  }

  setFaults(f: Partial<SubscribeFaults>): SubscribeFaults {
    this.faults = { ...this.faults, ...f };
    return { ...this.faults };
  }

  /** subscribeMessage.send: WeChat's answer to the parameters the SDK sent (snake_case). */
  send(params: Record<string, unknown>): WxJson | Promise<WxJson> {
    const answer = this.deliver(params);
    const { delayMs } = this.faults;
    if (!(delayMs > 0)) return answer;
    return new Promise((resolve) => setTimeout(() => resolve(answer), delayMs));
  }

  private deliver(params: Record<string, unknown>): WxJson {
    if (this.faults.failNext > 0) {
      this.faults.failNext--;
      return wxError(this.faults.errcode, this.faults.errmsg);
    }
    const touser = params['touser'];
    if (typeof touser !== 'string' || !OPENID.test(touser)) return wxError(40003, 'invalid openid');
    const templateId = params['template_id'];
    const t = typeof templateId === 'string' ? this.templates.get(templateId) : undefined;
    if (!t) return wxError(40037, 'invalid template_id');
    const page = params['page'];
    if (page !== undefined && page !== '') {
      const path = String(page).split('?')[0]!.replace(/^\//, '');
      if (this.pages && !this.pages.has(path)) return wxError(41030, 'invalid page');
    }
    const state = params['miniprogram_state'] ?? 'formal';
    if (!['developer', 'trial', 'formal'].includes(String(state))) {
      return wxError(47003, 'argument invalid! miniprogram_state invalid');
    }
    const data = params['data'];
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      return wxError(47003, 'argument invalid! data is empty');
    }
    const values: Record<string, string> = {};
    for (const k of t.keywords) {
      const entry = (data as Record<string, unknown>)[k.key];
      const value =
        typeof entry === 'object' && entry !== null ? (entry as { value?: unknown }).value : undefined;
      if (value === undefined || value === '')
        return wxError(47003, `argument invalid! data.${k.key}.value is empty`);
      if (!acceptsValue(k.key, value)) return wxError(47003, `argument invalid! data.${k.key}.value invalid`);
      values[k.key] = String(value);
    }
    const left = this.state.acceptances[touser]?.[t.id] ?? 0;
    if (left <= 0) return wxError(43101, 'user refuse to accept the msg');
    this.state.acceptances[touser]![t.id] = left - 1;
    const msg: InboxMessage = {
      msgId: String(++this.state.seq),
      openid: touser,
      templateId: t.id,
      title: t.title,
      ...(page ? { page: String(page) } : {}),
      miniprogramState: String(state),
      lang: String(params['lang'] ?? 'zh_CN'),
      data: values,
      text: [t.title, ...t.keywords.map((k) => `${k.name}：${values[k.key]}`)].join('\n'),
      atMs: this.now(),
    };
    this.state.inboxes[touser] = [...(this.state.inboxes[touser] ?? []), msg];
    this.save();
    return { errcode: 0, errmsg: 'ok' };
  }

  /** The control routes; resolves true when it answered the request. */
  async handleControl(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (!req.url?.startsWith('/_emulator/subscribe/')) return false;
    const url = new URL(req.url, 'http://emulator');
    const path = url.pathname;
    const reply = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(text);
      return true;
    };
    const m = /^\/_emulator\/subscribe\/([a-z]+)$/.exec(path);
    if (!m) return reply(404, { error: `no route ${req.method} ${path}` });
    const route = `${req.method} ${m[1]}`;
    const openid = url.searchParams.get('openid') ?? undefined;
    try {
      switch (route) {
        case 'GET templates':
          return reply(200, { templates: this.listTemplates() });
        case 'GET inbox':
          return reply(200, openid ? { openid, messages: this.inbox(openid) } : { inboxes: this.inboxes() });
        case 'GET acceptances':
          if (!openid) return reply(400, { error: 'openid is required' });
          return reply(200, { openid, acceptances: this.acceptances(openid) });
      }
      const body = await readJson(req);
      switch (route) {
        case 'POST grant': {
          const {
            openid: o,
            templateId,
            count,
          } = body as { openid?: string; templateId?: string; count?: number };
          if (typeof o !== 'string' || typeof templateId !== 'string') {
            return reply(400, { error: 'openid and templateId are required' });
          }
          return reply(200, { openid: o, templateId, acceptances: this.grant(o, templateId, count ?? 1) });
        }
        case 'POST request': {
          const {
            openid: o,
            tmplIds,
            answer,
          } = body as {
            openid?: string;
            tmplIds?: unknown;
            answer?: SubscribeAnswer | Record<string, SubscribeAnswer>;
          };
          if (typeof o !== 'string') return reply(400, { error: 'openid is required' });
          return reply(200, this.request(o, tmplIds, answer));
        }
        case 'POST faults':
          return reply(200, { faults: this.setFaults(body as Partial<SubscribeFaults>) });
      }
      return reply(404, { error: `no route ${req.method} ${path}` });
    } catch (e) {
      return reply(400, { error: (e as Error).message });
    }
  }
}

function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 64 * 1024) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      try {
        const text = Buffer.concat(chunks).toString('utf8');
        const v = text ? JSON.parse(text) : {};
        if (typeof v !== 'object' || v === null || Array.isArray(v))
          throw new Error('body must be a JSON object');
        resolve(v as Record<string, unknown>);
      } catch (e) {
        reject(e);
      }
    });
    req.on('error', reject);
  });
}
