/**
 * `noticeTemplates`: which templates the mini-program asks the user to accept
 * (wx.requestSubscribeMessage). The prompt can only open in the user's tap handler, before
 * anything asynchronous, so the page loads these ids first and asks on the tap.
 */
import { ConfigError } from '../config';
import type { NoticeTemplateOffer, NoticeTemplatesResult } from '../contract';
import type { Deps } from '../domain/deps';
import { onlyFields, requireOpenid } from '../domain/validate';
import { log } from '../log';
import type { Caller } from '../runtime/callable';
import { loadNoticeConfig, type NoticeConfig } from './config';
import { ADMIN_KINDS, KIND_TITLE, type NoticeKind, SHOPPER_KINDS } from './kinds';

/** The templates behind `kinds`, each once (kinds may share a template), in the kinds' order. */
export function templateOffers(config: NoticeConfig, kinds: readonly NoticeKind[]): NoticeTemplateOffer[] {
  const offers: NoticeTemplateOffer[] = [];
  for (const kind of kinds) {
    const t = config.templates[kind];
    if (!t) continue;
    const offer = offers.find((o) => o.templateId === t.templateId);
    if (offer) offer.title = `${offer.title}、${KIND_TITLE[kind]}`;
    else offers.push({ templateId: t.templateId, title: KIND_TITLE[kind] });
  }
  return offers;
}

export async function noticeTemplates(
  deps: Pick<Deps, 'config'> & { notices?: { config: NoticeConfig } },
  event: Record<string, unknown>,
  caller: Caller,
): Promise<NoticeTemplatesResult> {
  onlyFields(event, []);
  const openid = requireOpenid(caller);
  const config = deps.notices?.config ?? { templates: {}, miniprogramState: 'formal' };
  return {
    shopper: templateOffers(config, SHOPPER_KINDS),
    admin: deps.config.adminOpenids.has(openid) ? templateOffers(config, ADMIN_KINDS) : [],
  };
}

/**
 * The notice variables, read once per cold start; invalid ones are logged now and answered as
 * CONFIG_INVALID on every call, like the rest of the configuration.
 */
export function noticeConfigAtColdStart(
  fn: string,
  env: Record<string, string | undefined>,
): () => NoticeConfig {
  const { config, problems } = loadNoticeConfig(env);
  if (problems.length > 0) log('error', 'config.invalid', { fn, problems });
  return () => {
    if (problems.length > 0) throw new ConfigError(problems);
    return config;
  };
}
