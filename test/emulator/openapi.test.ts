/**
 * Conformance: the real wx-server-sdk@4.0.2's `cloud.openapi.subscribeMessage.send` against the
 * emulator (the wire format itself is pinned in openapi-wire.test.ts): the resolved value,
 * WeChat's errcodes as the SDK surfaces them, one message per acceptance, and the inbox.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEMO_SUBSCRIBE_TEMPLATES, DEMO_TEMPLATE_IDS } from '../../sandbox/notice-templates';
import { startTcbEmulator, type TcbEmulator } from '../../sandbox/tcb';
import { subscribeControl } from '../../sandbox/tcb/subscribe-client';
import { type Any, connectSdk, rejectionOf } from './sdk';

const PAGES = (
  JSON.parse(readFileSync(resolve(__dirname, '../../miniprogram/app.json'), 'utf8')) as { pages: string[] }
).pages;
const TPL = DEMO_TEMPLATE_IDS.refundApplied;
const SHOPPER = 'o_shopper_conformance';

function aMessage(over: Record<string, unknown> = {}) {
  return {
    touser: SHOPPER,
    templateId: TPL,
    page: 'pages/admin-refund/index?refundId=R1',
    miniprogramState: 'developer',
    lang: 'zh_CN',
    data: {
      character_string1: { value: 'O202505011000001234' },
      amount2: { value: '12.50元' },
      thing3: { value: '买多了 😀' },
      time4: { value: '2025年5月1日 10:00' },
    },
    ...over,
  };
}

let emu: TcbEmulator;
let cloud: Any;
const control = () => subscribeControl(emu.url);

beforeAll(async () => {
  emu = await startTcbEmulator({ subscribe: { templates: DEMO_SUBSCRIBE_TEMPLATES, pages: PAGES } });
  cloud = connectSdk(emu.serviceUrl).cloud;
});
afterAll(() => emu.close());

describe('the platform’s answers', () => {
  beforeEach(async () => {
    await control().faults({ failNext: 0 });
  });

  it('delivers a message the user accepted and resolves as the SDK documents', async () => {
    const openid = 'o_accepts_once';
    const prompt = await control().request(openid, [TPL], 'accept');
    expect(prompt).toEqual({ errMsg: 'requestSubscribeMessage:ok', [TPL]: 'accept' });

    const res = await cloud.openapi.subscribeMessage.send(aMessage({ touser: openid }));
    expect(res).toEqual({ errCode: 0, errMsg: 'openapi.subscribeMessage.send:ok' });

    const inbox = await control().inbox(openid);
    expect(inbox).toHaveLength(1);
    expect(inbox[0]).toMatchObject({
      templateId: TPL,
      title: '退款申请通知',
      page: 'pages/admin-refund/index?refundId=R1',
      data: { thing3: '买多了 😀', amount2: '12.50元' },
    });
    expect(inbox[0]!.text).toBe(
      '退款申请通知\n订单编号：O202505011000001234\n退款金额：12.50元\n退款原因：买多了 😀\n申请时间：2025年5月1日 10:00',
    );
  });

  it('answers 43101 once the acceptance is used up, as the SDK surfaces it', async () => {
    const openid = 'o_used_up';
    await control().grant(openid, TPL, 1);
    await cloud.openapi.subscribeMessage.send(aMessage({ touser: openid }));
    const e = await rejectionOf(cloud.openapi.subscribeMessage.send(aMessage({ touser: openid })));
    expect(e.errCode).toBe(43101);
    expect(e.errMsg).toMatch(
      /^openapi\.subscribeMessage\.send:fail user refuse to accept the msg rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$/,
    );
    expect(await control().inbox(openid)).toHaveLength(1);
  });

  it('answers 43101 to a user who refused, and delivers nothing', async () => {
    const openid = 'o_refuses';
    expect(await control().request(openid, [TPL], 'reject')).toMatchObject({ [TPL]: 'reject' });
    const e = await rejectionOf(cloud.openapi.subscribeMessage.send(aMessage({ touser: openid })));
    expect(e.errCode).toBe(43101);
    expect(await control().inbox(openid)).toEqual([]);
  });

  it('lets one-time acceptances add up: three accepted prompts, three messages', async () => {
    const openid = 'o_three_times';
    for (let i = 0; i < 3; i++) await control().request(openid, [TPL]);
    expect(await control().acceptances(openid)).toEqual({ [TPL]: 3 });
    for (let i = 0; i < 3; i++) await cloud.openapi.subscribeMessage.send(aMessage({ touser: openid }));
    expect(await control().acceptances(openid)).toEqual({ [TPL]: 0 });
    expect(
      (await rejectionOf(cloud.openapi.subscribeMessage.send(aMessage({ touser: openid })))).errCode,
    ).toBe(43101);
  });

  it.each([
    ['an unknown template', { templateId: 'nope-nope-nope-nope' }, 40037, 'invalid template_id'],
    ['a bad openid', { touser: '' }, 40003, 'invalid openid'],
    ['a page the mini-program does not have', { page: 'pages/nowhere/index' }, 41030, 'invalid page'],
    [
      'a thing over 20 characters',
      { data: { ...aMessage().data, thing3: { value: '这是一段超过二十个字的退款原因文字描述内容呀' } } },
      47003,
      'argument invalid! data.thing3.value invalid',
    ],
    [
      'an amount without digits',
      { data: { ...aMessage().data, amount2: { value: '十二元' } } },
      47003,
      'argument invalid! data.amount2.value invalid',
    ],
    [
      'a missing field',
      {
        data: { character_string1: { value: 'O1' }, amount2: { value: '1.00元' }, time4: { value: '10:00' } },
      },
      47003,
      'argument invalid! data.thing3.value is empty',
    ],
    [
      'a line break in a value',
      { data: { ...aMessage().data, thing3: { value: '第一行\n第二行' } } },
      47003,
      'argument invalid! data.thing3.value invalid',
    ],
  ])('refuses %s with errcode %s and keeps the acceptance', async (_what, over, errCode, errmsg) => {
    const openid = `o_bad_${errCode}_${Math.random().toString(36).slice(2, 8)}`;
    await control().grant(openid, TPL, 1);
    const e = await rejectionOf(
      cloud.openapi.subscribeMessage.send({ ...aMessage({ touser: openid }), ...(over as object) }),
    );
    expect(e.errCode).toBe(errCode);
    expect(e.errMsg).toContain(`openapi.subscribeMessage.send:fail ${errmsg} rid: `);
    if (errCode !== 40003) expect(await control().acceptances(openid)).toEqual({ [TPL]: 1 });
  });

  it('fails the next sends with an injected transient errcode, then delivers', async () => {
    const openid = 'o_transient';
    await control().grant(openid, TPL, 1);
    await control().faults({ failNext: 1, errcode: -1, errmsg: 'system error' });
    const e = await rejectionOf(cloud.openapi.subscribeMessage.send(aMessage({ touser: openid })));
    expect(e.errCode).toBe(-1);
    expect(e.errMsg).toContain('openapi.subscribeMessage.send:fail system error rid: ');
    await cloud.openapi.subscribeMessage.send(aMessage({ touser: openid }));
    expect(await control().inbox(openid)).toHaveLength(1);
  });

  it('answers a cloud call it does not implement with the platform’s API-not-found code', async () => {
    const e = await rejectionOf(cloud.openapi.security.msgSecCheck({ content: 'hello' }));
    expect(e.errCode).toBe(-604100);
  });
});

describe('the subscribe prompt (wx.requestSubscribeMessage) on the sandbox’s mini-program side', () => {
  it('asks for at most three templates, as WeChat does', async () => {
    const ids = Object.values(DEMO_TEMPLATE_IDS).slice(0, 4);
    expect(await control().request('o_prompt', ids)).toEqual({
      errMsg: 'requestSubscribeMessage:fail Templates count out of max bounds',
      errCode: 20003,
    });
  });

  it('refuses an unknown template id and answers each template on its own', async () => {
    expect(await control().request('o_prompt', ['unknown-template-id'])).toMatchObject({ errCode: 20001 });
    const res = await control().request(
      'o_prompt',
      [DEMO_TEMPLATE_IDS.refundReview, DEMO_TEMPLATE_IDS.refundResult],
      {
        [DEMO_TEMPLATE_IDS.refundReview]: 'accept',
        [DEMO_TEMPLATE_IDS.refundResult]: 'reject',
      },
    );
    expect(res).toEqual({
      errMsg: 'requestSubscribeMessage:ok',
      [DEMO_TEMPLATE_IDS.refundReview]: 'accept',
      [DEMO_TEMPLATE_IDS.refundResult]: 'reject',
    });
    expect(await control().acceptances('o_prompt')).toEqual({ [DEMO_TEMPLATE_IDS.refundReview]: 1 });
  });
});

describe('control routes', () => {
  it('answer an unknown route with 404 rather than leaving it open', async () => {
    for (const path of ['/_emulator/subscribe/nope', '/_emulator/subscribe/inbox/extra']) {
      const res = await fetch(`${emu.url}${path}`);
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ error: `no route GET ${path}` });
    }
  });
});

describe('persistence', () => {
  it('keeps acceptances and inboxes across a restart with a data folder', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tcb-subscribe-'));
    try {
      const first = await startTcbEmulator({
        dataDir: dir,
        subscribe: { templates: DEMO_SUBSCRIBE_TEMPLATES },
      });
      first.subscribe.grant('o_persist', TPL, 2);
      first.subscribe.send({
        touser: 'o_persist',
        template_id: TPL,
        data: aMessage().data,
      });
      await first.close();
      const second = await startTcbEmulator({
        dataDir: dir,
        subscribe: { templates: DEMO_SUBSCRIBE_TEMPLATES },
      });
      expect(second.subscribe.acceptances('o_persist')).toEqual({ [TPL]: 1 });
      expect(second.subscribe.inbox('o_persist')).toHaveLength(1);
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
