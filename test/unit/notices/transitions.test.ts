/**
 * Which notices each stored change sends, to whom, under which subject (the outbox id's
 * middle part, which makes a repeat of the same change send nothing).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../cloudfunctions/shared/config';
import type { Deps } from '../../../cloudfunctions/shared/domain/deps';
import type { RefundDoc } from '../../../cloudfunctions/shared/domain/model';
import { loadNoticeConfig } from '../../../cloudfunctions/shared/notices/config';
import type { NoticeKind } from '../../../cloudfunctions/shared/notices/kinds';
import type { NoticeDoc } from '../../../cloudfunctions/shared/notices/outbox';
import type { SubscribeMessage } from '../../../cloudfunctions/shared/notices/send';
import {
  reasonText,
  refundNotices,
  sendBudgetMs,
  tellRefund,
} from '../../../cloudfunctions/shared/notices/transitions';
import type { Store } from '../../../cloudfunctions/shared/store';
import { DEMO_TEMPLATE_IDS as T } from '../../../sandbox/notice-templates';

const AT = Date.UTC(2025, 4, 1, 2, 0);

function refundDoc(over: Partial<RefundDoc> = {}): RefundDoc {
  return {
    _id: 'R0123456789abcdef0123456789abcd',
    orderId: '20250501100000abcdefghijkl',
    openid: 'o_shopper_1',
    refundFee: 6800,
    totalFee: 6800,
    reason: '买错了规格',
    status: 'PENDING_REVIEW',
    createdAtMs: AT,
    updatedAtMs: AT,
    leaseUntilMs: 0,
    submitAttempts: 0,
    history: [],
    ...over,
  };
}

const who = (n: { kind: NoticeKind; subject: string; recipients?: readonly string[] }) => [
  n.kind,
  n.subject,
  n.recipients ?? 'admins',
];

describe('refundNotices', () => {
  const r = refundDoc();
  const id = r._id;

  it('tells the admins of an application, and the shopper of a review', () => {
    expect(refundNotices(r, 'applied', AT).map(who)).toEqual([['refund_applied', id, 'admins']]);
    const approved = refundDoc({ status: 'APPROVED' });
    expect(refundNotices(approved, 'approved', AT).map(who)).toEqual([
      ['refund_approved', id, ['o_shopper_1']],
    ]);
    const rejected = refundDoc({ status: 'REJECTED', comment: '已发货' });
    const [n] = refundNotices(rejected, 'rejected', AT);
    expect(who(n!)).toEqual(['refund_rejected', id, ['o_shopper_1']]);
    expect(n!.data).toMatchObject({ comment: '已发货', status: 'REJECTED' });
    expect(refundNotices(refundDoc({ status: 'SUCCESS' }), 'resolved', AT).map(who)).toEqual([
      ['refund_completed', id, ['o_shopper_1']],
    ]);
  });

  it('tells the admins of a FAILED refund under the refund and its state, with WeChat’s words', () => {
    const failed = refundDoc({
      status: 'FAILED',
      failReason: 'NOTENOUGH: 基本账户余额不足，请充值后重新发起',
    });
    const [n] = refundNotices(failed, 'failed', AT);
    expect(who(n!)).toEqual(['refund_attention', `${id}:FAILED`, 'admins']);
    expect(n!.data).toMatchObject({ detail: '基本账户余额不足，请充值后重新发起', status: 'FAILED' });
    // The same state again (retried, refused again) is the same subject: the outbox sends nothing new.
    expect(refundNotices(failed, 'failed', AT + 60_000)[0]!.subject).toBe(n!.subject);
  });

  it('tells both sides of WeChat’s CLOSED, and only the admins of ABNORMAL', () => {
    expect(refundNotices(refundDoc({ status: 'CLOSED' }), 'wechat', AT, 'PROCESSING').map(who)).toEqual([
      ['refund_attention', `${id}:CLOSED`, 'admins'],
      ['refund_closed', id, ['o_shopper_1']],
    ]);
    expect(refundNotices(refundDoc({ status: 'ABNORMAL' }), 'wechat', AT, 'PROCESSING').map(who)).toEqual([
      ['refund_attention', `${id}:ABNORMAL`, 'admins'],
    ]);
  });

  it('tells the shopper of a SUCCESS, and the admins too when it came after the shop had ended the refund', () => {
    expect(refundNotices(refundDoc({ status: 'SUCCESS' }), 'wechat', AT, 'PROCESSING').map(who)).toEqual([
      ['refund_completed', id, ['o_shopper_1']],
    ]);
    const late = refundDoc({ status: 'SUCCESS', flag: 'SUCCESS_AFTER_FINAL', flaggedFrom: 'REJECTED' });
    const notices = refundNotices(late, 'wechat', AT, 'REJECTED');
    expect(notices.map(who)).toEqual([
      ['refund_completed', id, ['o_shopper_1']],
      ['refund_attention', `${id}:SUCCESS`, 'admins'],
    ]);
    expect(notices[1]!.data).toMatchObject({ detail: '微信已退款，本店原记为已拒绝' });
    // An ABNORMAL flagged earlier that WeChat now reports SUCCESS: good news, no second alarm.
    expect(refundNotices(late, 'wechat', AT, 'ABNORMAL').map(who)).toEqual([
      ['refund_completed', id, ['o_shopper_1']],
    ]);
  });

  it('never hands WeChat’s reason to a shopper notice', () => {
    const failed = refundDoc({ status: 'CLOSED', failReason: 'REFUNDCLOSE: 退款关闭' });
    for (const n of refundNotices(failed, 'wechat', AT, 'PROCESSING').filter((x) => x.recipients))
      expect(n.data).not.toHaveProperty('detail');
  });
});

describe('reasonText', () => {
  it('drops the err_code when a Chinese description follows, and keeps a bare code', () => {
    expect(reasonText('NOTENOUGH: 基本账户余额不足')).toBe('基本账户余额不足');
    expect(reasonText('WXPAY_UNAVAILABLE: refundquery did not answer')).toBe(
      'WXPAY_UNAVAILABLE: refundquery did not answer',
    );
    expect(reasonText(undefined)).toBeUndefined();
  });
});

describe('sendBudgetMs', () => {
  it('gives a send half of what is left before the call deadline, at most 3 s', () => {
    const at = (left: number) =>
      sendBudgetMs({ now: () => 0, budget: { endsAtMs: 0, callDeadlineMs: left } });
    // payNotify: 5 s, call deadline 1.5 s before its end, 50 ms spent on the payment.
    expect(at(3_450)).toBe(1_725);
    expect(at(54_000)).toBe(3_000);
    expect(at(800)).toBe(400);
    expect(at(-5)).toBe(0);
  });
});

describe('tellRefund', () => {
  function deps(env: Record<string, string>, kinds?: NoticeKind[]) {
    const gets: string[] = [];
    const inserted: NoticeDoc[] = [];
    const sent: SubscribeMessage[] = [];
    const store = {
      cmd: { in: (x: unknown) => x, remove: () => undefined, push: (x: unknown) => x },
      get: async (_c: string, id: string) => {
        gets.push(id);
        return { _id: id, items: [{ productId: 'p', name: '西湖龙井', priceFen: 6800, quantity: 1 }] };
      },
      insert: async (_c: string, doc: NoticeDoc) => {
        inserted.push(doc);
        return 'inserted';
      },
      cas: async () => true,
    } as unknown as Store;
    const { config } = loadNoticeConfig(env);
    const d = {
      store,
      now: () => AT,
      log: () => {},
      config: { ...loadConfig({ ADMIN_OPENIDS: 'o_admin' }), shopName: '小店' },
      budget: { endsAtMs: AT + 30_000, callDeadlineMs: AT + 27_000 },
      notices: {
        config,
        send: async (m: SubscribeMessage) => {
          sent.push(m);
          return { ok: true as const };
        },
        ...(kinds ? { kinds } : {}),
      },
    } as unknown as Deps;
    return { d, gets, inserted, sent };
  }
  const withProduct = `${T.refundResult} character_string1=orderId thing2=product phrase3=status`;
  const without = `${T.refundResult} character_string1=orderId phrase3=status`;

  it('reads the order for its product only when the template shows one', async () => {
    const a = deps({ NOTICE_REFUND_COMPLETED: withProduct });
    await tellRefund(a.d, refundDoc({ status: 'SUCCESS' }), 'resolved');
    expect(a.gets).toEqual(['20250501100000abcdefghijkl']);
    expect(a.sent[0]!.data['thing2']).toEqual({ value: '西湖龙井 ×1' });

    const b = deps({ NOTICE_REFUND_COMPLETED: without });
    await tellRefund(b.d, refundDoc({ status: 'SUCCESS' }), 'resolved');
    expect(b.gets).toEqual([]);
    expect(b.sent).toHaveLength(1);
  });

  it('writes a kind it holds no template for as deferred, with the product, for reconcile to render', async () => {
    const c = deps({ NOTICE_REFUND_COMPLETED: withProduct }, ['refund_approved']);
    await tellRefund(c.d, refundDoc({ status: 'SUCCESS' }), 'resolved');
    expect(c.sent).toEqual([]);
    expect(c.inserted).toMatchObject([
      { kind: 'refund_completed', status: 'PENDING', deferred: true, facts: { product: '西湖龙井 ×1' } },
    ]);
  });
});
