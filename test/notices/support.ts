/**
 * Notices in tests: the outbox through the real wx-server-sdk and the emulator, and the users'
 * inboxes (服务通知) as the emulator delivered them.
 */
import { loadNoticeConfig } from '../../cloudfunctions/shared/notices/config';
import type { NoticeKind } from '../../cloudfunctions/shared/notices/kinds';
import type { NoticeDeps, NoticeDoc } from '../../cloudfunctions/shared/notices/outbox';
import { NOTICES_COLLECTION } from '../../cloudfunctions/shared/notices/outbox';
import type { SubscribeSend } from '../../cloudfunctions/shared/notices/send';
import { Store } from '../../cloudfunctions/shared/store';
import { demoNoticeEnv } from '../../sandbox/notice-templates';
import type { InboxMessage } from '../../sandbox/tcb/subscribe';
import { type SubscribeControl, subscribeControl } from '../../sandbox/tcb/subscribe-client';
import type { Any } from '../emulator/sdk';

export interface LogLine {
  level: string;
  event: string;
  fields: Record<string, unknown>;
}

/** Deps for notify/retryNotices: a fresh Store per call, like each invocation gets. */
export function noticeDeps(options: {
  db: Any;
  send: SubscribeSend | undefined;
  now: () => number;
  admins?: string[];
  env?: Record<string, string>;
  logs?: LogLine[];
  /** The kinds this function was given variables for (others are deferred); absent: all. */
  kinds?: readonly NoticeKind[];
  timeScale?: number;
}): NoticeDeps {
  const { config, problems } = loadNoticeConfig(options.env ?? demoNoticeEnv());
  if (problems.length) throw new Error(problems.join('; '));
  const shop: NoticeDeps['config'] = {
    adminOpenids: new Set(options.admins ?? []),
    shopName: '小店',
    ...(options.timeScale !== undefined ? { timeScale: options.timeScale } : {}),
  };
  return {
    store: new Store(options.db),
    now: options.now,
    log: (level, event, fields = {}) => options.logs?.push({ level, event, fields }),
    config: shop,
    notices: {
      config,
      ...(options.send ? { send: options.send } : {}),
      ...(options.kinds ? { kinds: options.kinds } : {}),
    },
  };
}

export async function outbox(db: Any): Promise<NoticeDoc[]> {
  const res = await db.collection(NOTICES_COLLECTION).limit(1000).get();
  return res.data as NoticeDoc[];
}

/** Polls an inbox until it holds `count` messages (notices sent from another process) or fails. */
export async function waitForInbox(
  control: SubscribeControl,
  openid: string,
  count: number,
  timeoutMs = 10_000,
): Promise<InboxMessage[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const inbox = await control.inbox(openid);
    if (inbox.length >= count || Date.now() > until) return inbox;
    await new Promise((r) => setTimeout(r, 50));
  }
}

export { subscribeControl };
