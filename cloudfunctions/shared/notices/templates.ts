/**
 * `noticeTemplates`: which templates the mini-program asks the user to accept
 * (wx.requestSubscribeMessage). The prompt can only open in the user's tap handler, before
 * anything asynchronous, so the page loads these ids first and asks on the tap.
 */
import type { NoticeTemplateOffer, NoticeTemplatesResult } from '../contract';
import type { Deps } from '../domain/deps';
import { onlyFields, requireOpenid } from '../domain/validate';
import type { Caller } from '../runtime/callable';
import type { NoticeConfig } from './config';
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
  deps: Pick<Deps, 'config'>,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<NoticeTemplatesResult> {
  onlyFields(event, []);
  const openid = requireOpenid(caller);
  const { notices } = deps.config;
  return {
    shopper: templateOffers(notices, SHOPPER_KINDS),
    admin: deps.config.adminOpenids.has(openid) ? templateOffers(notices, ADMIN_KINDS) : [],
  };
}
