/**
 * The emulator's subscribe message controls over HTTP, for the console, the stack's tests and
 * anything in another process: answer a subscribe prompt as a user would, read inboxes,
 * make the next sends fail.
 */
import type {
  InboxMessage,
  RequestSubscribeResult,
  SubscribeAnswer,
  SubscribeFaults,
  SubscribeTemplate,
} from './subscribe';

export interface SubscribeControl {
  templates(): Promise<SubscribeTemplate[]>;
  /** wx.requestSubscribeMessage as `openid`, answered `answer` (default: accept all). */
  request(
    openid: string,
    tmplIds: string[],
    answer?: SubscribeAnswer | Record<string, SubscribeAnswer>,
  ): Promise<RequestSubscribeResult>;
  grant(openid: string, templateId: string, count?: number): Promise<number>;
  acceptances(openid: string): Promise<Record<string, number>>;
  inbox(openid: string): Promise<InboxMessage[]>;
  inboxes(): Promise<Record<string, InboxMessage[]>>;
  faults(f: Partial<SubscribeFaults>): Promise<SubscribeFaults>;
}

/** `emulatorUrl` is the emulator's base URL (TcbEmulator.url, or tcbServiceUrl without /admin). */
export function subscribeControl(emulatorUrl: string): SubscribeControl {
  const base = `${emulatorUrl.replace(/\/admin\/?$/, '').replace(/\/$/, '')}/_emulator/subscribe`;
  const call = async <T>(method: 'GET' | 'POST', route: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${base}/${route}`, {
      method,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const json = (await res.json()) as T & { error?: string };
    if (!res.ok) throw new Error(`emulator ${method} ${route}: ${json.error ?? res.status}`);
    return json;
  };
  const q = (openid: string) => `?openid=${encodeURIComponent(openid)}`;
  return {
    templates: async () => (await call<{ templates: SubscribeTemplate[] }>('GET', 'templates')).templates,
    request: (openid, tmplIds, answer) => call('POST', 'request', { openid, tmplIds, answer }),
    grant: async (openid, templateId, count = 1) =>
      (await call<{ acceptances: number }>('POST', 'grant', { openid, templateId, count })).acceptances,
    acceptances: async (openid) =>
      (await call<{ acceptances: Record<string, number> }>('GET', `acceptances${q(openid)}`)).acceptances,
    inbox: async (openid) => (await call<{ messages: InboxMessage[] }>('GET', `inbox${q(openid)}`)).messages,
    inboxes: async () => (await call<{ inboxes: Record<string, InboxMessage[]> }>('GET', 'inbox')).inboxes,
    faults: async (f) => (await call<{ faults: SubscribeFaults }>('POST', 'faults', f)).faults,
  };
}
