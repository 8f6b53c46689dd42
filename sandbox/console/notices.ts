/**
 * The console's 服务通知 routes: a user's inbox (the notices as the phone shows them) and
 * acceptances, and the subscribe prompt answered as that user, all through the CloudBase
 * emulator's control routes (/_emulator/subscribe/*): what wx.requestSubscribeMessage and the
 * 服务通知 list are on a phone. The browser cannot call the emulator itself (another origin).
 */
import type { InboxMessage, RequestSubscribeResult } from '../tcb/subscribe';
import { subscribeControl } from '../tcb/subscribe-client';

/** What `POST /console/api/notices {openid}` answers. */
export interface NoticesView {
  openid: string;
  /** Newest first. */
  inbox: InboxMessage[];
  /** Template id → acceptances left. */
  acceptances: Record<string, number>;
  templates: { id: string; title: string }[];
}

/** WeChat's prompt shows at most 3 templates. */
const PROMPT_MAX = 3;

export function noticeRoutes(
  tcbServiceUrl: string,
  openids: readonly string[],
  badRequest: (message: string) => Error,
): Record<string, (body: Record<string, unknown>) => Promise<unknown>> {
  const control = subscribeControl(tcbServiceUrl);
  const openidOf = (body: Record<string, unknown>): string => {
    const o = body['openid'];
    if (typeof o !== 'string' || !openids.includes(o))
      throw badRequest(`openid must be one of the console's users: ${openids.join(', ')}`);
    return o;
  };
  return {
    'POST notices': async (body): Promise<NoticesView> => {
      const openid = openidOf(body);
      const [inbox, acceptances, templates] = await Promise.all([
        control.inbox(openid),
        control.acceptances(openid),
        control.templates(),
      ]);
      return {
        openid,
        inbox: inbox.reverse(),
        acceptances,
        templates: templates.map((t) => ({ id: t.id, title: t.title })),
      };
    },
    // The subscribe prompt on the user's phone, answered accept (or reject) for every template.
    'POST notices/subscribe': async (body): Promise<RequestSubscribeResult> => {
      const openid = openidOf(body);
      const ids = body['tmplIds'];
      if (
        !Array.isArray(ids) ||
        ids.length === 0 ||
        ids.length > PROMPT_MAX ||
        !ids.every((i) => typeof i === 'string')
      )
        throw badRequest(`tmplIds must list 1 to ${PROMPT_MAX} template ids`);
      const answer = body['answer'] ?? 'accept';
      if (answer !== 'accept' && answer !== 'reject') throw badRequest('answer must be accept or reject');
      return control.request(openid, ids as string[], answer);
    },
  };
}
