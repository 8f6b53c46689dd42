import { describe, expect, it } from 'vitest';
import {
  loadNoticeConfig,
  NOTICE_CONFIG_VARIABLES,
  NOTICE_ENV,
} from '../../../cloudfunctions/shared/notices/config';
import { NOTICE_KINDS } from '../../../cloudfunctions/shared/notices/kinds';
import { renderData } from '../../../cloudfunctions/shared/notices/render';
import { keywordType, satisfiesRule } from '../../../cloudfunctions/shared/notices/rules';
import { DEMO_SUBSCRIBE_TEMPLATES, demoNoticeEnv } from '../../../sandbox/notice-templates';
import { acceptsValue } from '../../../sandbox/tcb/subscribe';

const TPL = 'AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcde';

describe('notice configuration', () => {
  it('turns every notice off when nothing is set, without a problem', () => {
    expect(loadNoticeConfig({})).toEqual({
      config: { templates: {}, miniprogramState: 'formal' },
      problems: [],
    });
  });

  it('reads a template id and its keyword=variable fields', () => {
    const { config, problems } = loadNoticeConfig({
      NOTICE_REFUND_APPLIED: ` ${TPL}  character_string1=orderId amount2=amount thing3=reason time4=time `,
      NOTICE_MINIPROGRAM_STATE: 'trial',
    });
    expect(problems).toEqual([]);
    expect(config.miniprogramState).toBe('trial');
    expect(Object.keys(config.templates)).toEqual(['refund_applied']);
    expect(config.templates.refund_applied).toEqual({
      templateId: TPL,
      fields: [
        { keyword: 'character_string1', type: 'character_string', variable: 'orderId' },
        { keyword: 'amount2', type: 'amount', variable: 'amount' },
        { keyword: 'thing3', type: 'thing', variable: 'reason' },
        { keyword: 'time4', type: 'time', variable: 'time' },
      ],
    });
  });

  it.each([
    ['no template id', 'thing1=reason', 'NOTICE_REFUND_APPLIED must start with the template id'],
    ['no fields', TPL, 'NOTICE_REFUND_APPLIED names no fields'],
    ['a malformed pair', `${TPL} thing1:reason`, '"thing1:reason" is not keyword=variable'],
    ['an unknown keyword type', `${TPL} keyword1=reason`, 'keyword1 is not a subscribe message keyword'],
    ['a keyword twice', `${TPL} thing1=reason thing1=product`, 'thing1 is given twice'],
    ['a variable the notice lacks', `${TPL} thing1=count`, 'count is not available for this notice'],
    [
      'an amount field for text',
      `${TPL} amount2=reason`,
      'a amount field cannot show reason (it can show amount)',
    ],
    [
      'a phrase field for free text',
      `${TPL} phrase3=reason`,
      'a phrase field cannot show reason (it can show status)',
    ],
  ])('refuses %s with a message that says what to fix', (_what, value, problem) => {
    const { config, problems } = loadNoticeConfig({ NOTICE_REFUND_APPLIED: value });
    expect(problems.join('\n')).toContain(problem);
    expect(config.templates.refund_applied).toBeUndefined();
  });

  it('refuses an unknown mini-program state', () => {
    expect(loadNoticeConfig({ NOTICE_MINIPROGRAM_STATE: 'beta' }).problems).toEqual([
      'NOTICE_MINIPROGRAM_STATE must be formal, trial or developer',
    ]);
  });

  it('documents one variable per kind', () => {
    for (const kind of NOTICE_KINDS) expect(Object.keys(NOTICE_CONFIG_VARIABLES)).toContain(NOTICE_ENV[kind]);
  });
});

describe('the sandbox’s demo templates', () => {
  const { config, problems } = loadNoticeConfig(demoNoticeEnv());
  const facts = {
    refund: {
      refundId: 'R20250501100000abcdefABCDEF',
      orderId: 'O20250501100000abcdefABCDEF',
      refundFee: 1250,
      status: 'SUCCESS' as const,
      atMs: Date.UTC(2025, 4, 1, 2),
      reason: '包装破损，😀 而且颜色和图片上的完全不一样，希望退款',
      comment: '已超过七天无理由退货期限\n请联系客服',
      detail: 'NOTENOUGH 基本账户余额不足，请充值后重新发起',
      product: '西湖龙井 Longjing tea 50g',
    },
    order: { orderId: 'O1', totalFee: 13600, product: '广式月饼礼盒 Mooncakes ×1, 竹筷五双 ×2', atMs: 0 },
    bill: { billDayMs: Date.UTC(2025, 3, 30), mismatches: 3, atMs: 0 },
  };

  it('configures every kind without a problem', () => {
    expect(problems).toEqual([]);
    expect(Object.keys(config.templates).sort()).toEqual([...NOTICE_KINDS].sort());
  });

  it.each(NOTICE_KINDS)('%s fills every field of its template with a value WeChat accepts', (kind) => {
    const t = config.templates[kind]!;
    const f = kind === 'order_paid' ? facts.order : kind === 'bill_mismatch' ? facts.bill : facts.refund;
    const data = renderData(kind, t, f as never, '小店');
    const template = DEMO_SUBSCRIBE_TEMPLATES.find((d) => d.id === t.templateId)!;
    expect(Object.keys(data).sort()).toEqual(template.keywords.map((k) => k.key).sort());
    for (const [keyword, { value }] of Object.entries(data)) {
      expect(satisfiesRule(keywordType(keyword)!, value), `${keyword}=${value}`).toBe(true);
      expect(acceptsValue(keyword, value), `${keyword}=${value}`).toBe(true);
    }
  });

  it('shows the shopper the merchant’s comment on a rejection, and never WeChat’s reason', () => {
    const data = renderData('refund_rejected', config.templates.refund_rejected!, facts.refund, '小店');
    expect(data['thing4']).toEqual({ value: '已超过七天无理由退货期限 请联系客服' });
    expect(data['phrase3']).toEqual({ value: '已拒绝' });
    for (const kind of ['refund_approved', 'refund_completed', 'refund_closed', 'refund_rejected'] as const) {
      const text = JSON.stringify(renderData(kind, config.templates[kind]!, facts.refund, '小店'));
      expect(text).not.toContain('NOTENOUGH');
      expect(text).not.toContain('余额');
    }
  });

  it('shows the merchant what needs handling and why', () => {
    const data = renderData(
      'refund_attention',
      config.templates.refund_attention!,
      { ...facts.refund, status: 'FAILED' },
      '小店',
    );
    expect(data).toEqual({
      character_string1: { value: 'R20250501100000abcdefABCDEF' },
      amount2: { value: '12.50元' },
      phrase3: { value: '退款失败' },
      thing4: { value: 'NOTENOUGH 基本账户余额不足，…' },
      time5: { value: '2025年5月1日 10:00' },
    });
  });
});
