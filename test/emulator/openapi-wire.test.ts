/**
 * What the real wx-server-sdk@4.0.2 sends for `cloud.openapi.subscribeMessage.send`, recorded
 * by a bare HTTP server (its own file: the SDK's init is global to the process). The emulator's
 * decoder is checked against bytes it did not make.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodeOpenApiRequest } from '../../sandbox/tcb/openapi';
import { readWxApiForm, type WxApiForm } from '../../sandbox/tcb/wxapi';
import { type Any, connectSdk, rejectionOf } from './sdk';

let captured: { form: WxApiForm; contentType: string; url: string } | undefined;
const server = createServer(async (req, res) => {
  captured = {
    form: await readWxApiForm(req),
    contentType: req.headers['content-type'] ?? '',
    url: req.url ?? '',
  };
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify({ code: 'SYS_ERR', message: 'captured' }));
});
let cloud: Any;

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cloud = connectSdk(`http://127.0.0.1:${(server.address() as AddressInfo).port}/admin`).cloud;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

it('posts a multipart wx.openApi form whose protobuf requestData carries each parameter as snake_case JSON', async () => {
  const data = {
    character_string1: { value: 'O202505011000001234' },
    thing3: { value: '买多了 😀' },
  };
  const e = await rejectionOf(
    cloud.openapi.subscribeMessage.send({
      touser: 'o_shopper',
      templateId: 'TPL_0123456789',
      page: 'pages/order-detail/index?orderId=O1',
      miniprogramState: 'developer',
      lang: 'zh_CN',
      data,
    }),
  );
  // A TCB error body ({code, message}, JSON) is mapped through CloudBase's table: SYS_ERR → -501001.
  expect(e.errCode).toBe(-501001);
  expect(e.errMsg).toBe('openapi.subscribeMessage.send:fail -501001 resource system error. captured');

  expect(captured?.url).toMatch(/^\/admin\?env=test&seqId=/);
  expect(captured?.contentType).toMatch(/^multipart\/form-data; boundary=/);
  const form = captured!.form;
  expect([...form.keys()].sort()).toEqual(
    [
      'action',
      'apiName',
      'requestData',
      'envName',
      'wxCloudApiToken',
      'wxCloudbaseAccesstoken',
      'tcb_sessionToken',
      'crossAuthorizationToken',
    ].sort(),
  );
  expect(form.get('action')?.toString()).toBe('wx.openApi');
  expect(form.get('apiName')?.toString()).toBe('subscribeMessage.send');
  expect(form.get('envName')?.toString()).toBe('test');
  const { params, appid } = decodeOpenApiRequest(form.get('requestData')!);
  expect(appid).toBe('');
  expect(params).toEqual({
    touser: 'o_shopper',
    template_id: 'TPL_0123456789',
    page: 'pages/order-detail/index?orderId=O1',
    miniprogram_state: 'developer',
    lang: 'zh_CN',
    data,
  });
});
