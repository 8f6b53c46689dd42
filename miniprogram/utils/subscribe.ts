/**
 * Subscribe messages (服务通知) on the mini-program side. WeChat lets a user receive one
 * notice per template per acceptance, and opens the prompt only inside a tap handler and
 * before anything asynchronous in it: pages load the template ids first, then call
 * askSubscribe as the first thing their tap handler does. Refusing, or a prompt that cannot
 * open, never stops what the user tapped for.
 */
import type { NoticeTemplateOffer, NoticeTemplatesResult } from '../../cloudfunctions/shared/contract';
import { api } from '../services/api';

/** WeChat shows at most 3 templates per prompt. */
export const PROMPT_MAX = 3;

export interface SubscribeChoice {
  /** The prompt was opened (there were templates and the API exists). */
  asked: boolean;
  /** Titles the user accepted, and the rest (refused, banned or filtered). */
  accepted: string[];
  refused: string[];
  /** wx.requestSubscribeMessage's failure code, e.g. 20004: notices are switched off in WeChat's settings. */
  errCode?: number;
}

const NONE: NoticeTemplatesResult = { shopper: [], admin: [] };

/** The templates to ask for; none when the server has none configured or cannot be reached. */
export async function loadNoticeTemplates(): Promise<NoticeTemplatesResult> {
  try {
    return await api.noticeTemplates();
  } catch (err) {
    console.warn('noticeTemplates failed; not asking for notices', err);
    return NONE;
  }
}

/**
 * Opens WeChat's subscribe prompt for `offers` (at most PROMPT_MAX) and resolves with the
 * user's choice; never rejects. The prompt opens synchronously, so call this before the
 * first `await` of a tap handler.
 */
export function askSubscribe(offers: NoticeTemplateOffer[]): Promise<SubscribeChoice> {
  const asked = offers.slice(0, PROMPT_MAX);
  if (asked.length === 0 || typeof wx.requestSubscribeMessage !== 'function') {
    return Promise.resolve({ asked: false, accepted: [], refused: [] });
  }
  return new Promise((resolve) => {
    wx.requestSubscribeMessage({
      tmplIds: asked.map((o) => o.templateId),
      success: (res) => {
        const accepted = asked.filter((o) => res[o.templateId] === 'accept').map((o) => o.title);
        const refused = asked.filter((o) => res[o.templateId] !== 'accept').map((o) => o.title);
        resolve({ asked: true, accepted, refused });
      },
      fail: (res) =>
        resolve({ asked: true, accepted: [], refused: asked.map((o) => o.title), errCode: res.errCode }),
    });
  });
}

/** One line telling the user what they chose, or '' when nothing was asked. */
export function choiceNote(choice: SubscribeChoice): string {
  if (!choice.asked) return '';
  if (choice.errCode === 20004) return '微信设置中已关闭订阅消息，不会收到通知';
  if (choice.accepted.length === 0) return '未开启通知，可稍后在订单详情查看进度';
  return `已开启通知：${choice.accepted.join('、')}`;
}

/** The merchant's 接收通知 switch: which prompt each tap opens, and what it shows. */
export interface NoticeSwitch {
  offers: NoticeTemplateOffer[];
  /** At least one of the merchant's templates was accepted in this session. */
  on: boolean;
  note: string;
  /** The group of PROMPT_MAX templates the next tap asks for. */
  next: number;
}

export function noticeSwitch(offers: NoticeTemplateOffer[]): NoticeSwitch {
  return {
    offers,
    on: false,
    note: offers.length ? '点击开启，每次开启可收到每类通知各一条' : '',
    next: 0,
  };
}

/**
 * One tap on the switch: asks for the next group of templates (one-time subscriptions add up,
 * so a merchant taps again to keep receiving). Call first thing in the tap handler.
 */
export function tapNoticeSwitch(state: NoticeSwitch): Promise<NoticeSwitch> {
  const groups = Math.ceil(state.offers.length / PROMPT_MAX);
  if (groups === 0) return Promise.resolve(state);
  const group = state.next % groups;
  return askSubscribe(state.offers.slice(group * PROMPT_MAX, (group + 1) * PROMPT_MAX)).then((choice) => {
    const next = (group + 1) % groups;
    const rest = next !== 0 ? `；再点一次订阅其余 ${state.offers.length - next * PROMPT_MAX} 类` : '';
    return {
      ...state,
      on: state.on || choice.accepted.length > 0,
      note: `${choiceNote(choice) || '未能打开订阅'}${rest}`,
      next,
    };
  });
}
