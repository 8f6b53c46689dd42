/**
 * The deploy against the stateful fake of the Tencent Cloud API: the real executor and the real
 * @cloudbase/manager-node 5.6.5, with only manager-node's HTTP fetch and COS upload replaced
 * (below its TC3 signing). Every request the fake records carries a signature it verified.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import CloudBase from '@cloudbase/manager-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeTencentCloud, type RecordedCall } from '../../sandbox/tcloud/fake';
import { installTencentCloudFake } from '../../sandbox/tcloud/hook';
import type { EnvSpec } from '../../sandbox/tcloud/model';
import { buildFunctions, listFunctions, readFunctionConfig, sdkVersion } from '../../scripts/build';
import { DeployError, type ManagerApi } from '../../scripts/golive/executor';
import { type DeployInput, deployEnvironment } from '../../scripts/golive/flow';
import {
  type BuiltFunction,
  INDEXES,
  loadBuiltFunctions,
  loadRules,
  type Step,
} from '../../scripts/golive/plan';
import { goodVars, merchantCerts } from './helpers';

const root = resolve(__dirname, '../..');
const CREDS = { secretId: 'AKIDtestdeploy000000000000000000000', secretKey: 'test-secret-key' };
const ENV = 'shop-1a2b3c';
let dir: string;
let built: BuiltFunction[];
let vars: Record<string, string>;
let uninstall: (() => void) | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tcloud-'));
  // The external build: these tests exercise CloudBase's dependency install (云端安装依赖) and
  // its failures; the default bundled build installs nothing (test/deploy/deploy.test.ts).
  await buildFunctions({ out: join(dir, 'dist'), sdk: 'external' });
  built = loadBuiltFunctions(join(dir, 'dist'), join(root, 'cloudfunctions'));
  // The production shape with the notify URLs and domain left to deploy.
  const {
    CLOUDBASE_HTTP_DOMAIN: _d,
    WXPAY_NOTIFY_URL: _n,
    WXPAY_REFUND_NOTIFY_URL: _r,
    ...rest
  } = goodVars(await merchantCerts(join(dir, 'certs')));
  vars = rest;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
// Without a fake installed, manager-node would go to the real Tencent Cloud: refuse instead.
beforeAll(() => {
  const http = createRequire(createRequire(__filename).resolve('@cloudbase/manager-node'))(
    './utils/http-request',
  ) as {
    fetch: (url: string) => Promise<unknown>;
  };
  http.fetch = async (url) => {
    throw new Error(`network request to ${url} in a test without the Tencent Cloud fake`);
  };
});
afterEach(() => {
  uninstall?.();
  uninstall = undefined;
});

function cloud(env: Partial<EnvSpec> = {}, opts: { tcbRegional?: boolean } = {}): FakeTencentCloud {
  const fake = new FakeTencentCloud({
    credentials: [CREDS],
    envs: [{ envId: ENV, region: 'ap-shanghai', ...env }],
    ...opts,
  });
  uninstall = installTencentCloudFake(fake);
  return fake;
}

const managerFor =
  (creds = CREDS) =>
  (region: string): ManagerApi =>
    new CloudBase({ ...creds, envId: ENV, region }) as unknown as ManagerApi;

async function deploy(input: Partial<DeployInput> = {}) {
  const lines: string[] = [];
  const out = await deployEnvironment({
    functions: built,
    vars,
    rules: loadRules(join(root, 'deploy')),
    sdkVersion: sdkVersion(),
    managerFor: managerFor(),
    log: (l) => lines.push(l),
    pollMs: 5,
    ...input,
  });
  return { ...out, lines, text: lines.join('\n') };
}

/** Only these functions' steps (and, optionally, other kinds), to keep single-case tests short. */
const only =
  (fns: string[], kinds: Step['kind'][] = []) =>
  (s: Step) =>
    ('function' in s &&
      typeof s.function === 'string' &&
      fns.includes(s.function) &&
      s.kind.startsWith('function.')) ||
    kinds.includes(s.kind);

const MUTATING =
  /^(Create|Update|Delete|Modify|BatchCreate|SliceUpload)|^UpdateTrigger$|^CreateTrigger$|^DeleteTrigger$/;
const mutations = (calls: RecordedCall[]) =>
  calls
    .filter((c) => MUTATING.test(c.action))
    .map((c) => `${c.action} ${c.params['FunctionName'] ?? c.params['TableName'] ?? ''}`.trim());

function expectAllSigned(fake: FakeTencentCloud) {
  expect(fake.calls.length).toBeGreaterThan(0);
  expect(fake.calls.filter((c) => c.error?.startsWith('AuthFailure'))).toEqual([]);
}

describe('two full deploys of every function against the fake', () => {
  let fake: FakeTencentCloud;
  let firstCalls: RecordedCall[];
  let restore: () => void;
  // One fake for the whole sequence: each deploy builds on the state the previous one left.
  beforeAll(() => {
    fake = new FakeTencentCloud({ credentials: [CREDS], envs: [{ envId: ENV, region: 'ap-shanghai' }] });
    restore = installTencentCloudFake(fake);
  });
  afterAll(() => restore());

  it('the first creates every function on the chosen runtime, the timer, collections, indexes, routes and rules', async () => {
    const out = await deploy();
    firstCalls = [...fake.calls];
    expectAllSigned(fake);
    const creates = fake.actions('CreateFunction');
    expect(creates.map((c) => c.params['FunctionName']).sort()).toEqual(listFunctions());
    for (const c of creates) {
      const fn = c.params['FunctionName'] as string;
      expect(c.region).toBe('ap-shanghai');
      expect(c.params).toMatchObject({
        Runtime: 'Nodejs24.11',
        Handler: 'index.main',
        InstallDependency: 'TRUE',
        Namespace: ENV,
        Timeout: readFunctionConfig(fn).timeout ?? 3,
      });
      const code = c.params['Code'] as Record<string, string>;
      expect(code['TempCosObjectName']).toMatch(
        new RegExp(`/\\d{4}-\\d{2}-\\d{2}/1250000000/${ENV}/${fn}\\.zip$`),
      );
      expect(code['CosBucketRegion']).toBe('ap-shanghai');
    }
    expect(fake.actions('SliceUploadFile').every((c) => c.params['Bucket'] === 'shtempcos-1253665819')).toBe(
      true,
    );
    const triggers = fake.actions('BatchCreateTrigger');
    expect(
      triggers.map((c) => [c.params['FunctionName'], JSON.parse(c.params['Triggers'] as string)]),
    ).toEqual([
      [
        'billCheck',
        [{ TriggerName: 'billCheckMorning', Type: 'timer', TriggerDesc: '0 */15 10-11 * * * *' }],
      ],
      ['reconcile', [{ TriggerName: 'reconcileEvery5Min', Type: 'timer', TriggerDesc: '0 */5 * * * * *' }]],
    ]);
    expect(fake.actions('CreateTable').map((c) => c.params['TableName'])).toEqual([
      'products',
      'orders',
      'refunds',
      'payment_events',
      'bill_checks',
      'notices',
      'caller_limits',
    ]);
    // One update per index.
    expect(fake.actions('UpdateTable')).toHaveLength(INDEXES.length);
    // The current HTTP access service, never the legacy API, with authentication off.
    expect(fake.actions('CreateCloudBaseGWAPI')).toEqual([]);
    const routes = fake.actions('CreateHTTPServiceRoute').map((c) => c.params['Domain']);
    expect(routes).toEqual([
      {
        Domain: `${ENV}.ap-shanghai.app.tcloudbase.com`,
        Routes: [
          {
            Path: '/pay/notify',
            EnableAuth: false,
            EnableSafeDomain: false,
            Enable: true,
            UpstreamResourceType: 'SCF',
            UpstreamResourceName: 'payNotify',
            EnablePathTransmission: false,
          },
        ],
      },
      expect.objectContaining({
        Routes: [expect.objectContaining({ Path: '/refund/notify', EnableAuth: false })],
      }),
    ]);
    expect(fake.actions('ModifyResourcePermission')).toHaveLength(8); // seven collections and the functions
    // The notify URLs were derived before anything existed, and set on the functions.
    const payNotify = fake.env(ENV).functions['payNotify']!;
    expect(payNotify.Variables.find((v) => v.Key === 'WXPAY_NOTIFY_URL')?.Value).toBe(
      `https://${ENV}.ap-shanghai.app.tcloudbase.com/pay/notify`,
    );
    expect(out.readBack.filter((c) => c.status !== 'ok')).toEqual([]);
    expect(out.readBack.find((c) => c.name === 'function reconcile')?.detail).toContain(
      'Active, Nodejs24.11',
    );
  });

  it('the second changes nothing: no creation, no upload, no timer touched', async () => {
    const before = fake.calls.length;
    const out = await deploy();
    const second = fake.calls.slice(before);
    expectAllSigned(fake);
    // Only the security rules are applied again (ModifyResourcePermission is idempotent).
    expect(mutations(second).filter((m) => !m.startsWith('ModifyResourcePermission'))).toEqual([]);
    expect(second.filter((c) => c.action === 'GetTempCosInfo')).toEqual([]);
    expect(
      out.lines.filter((l) => l.startsWith('✔') && !/: (unchanged|present|already there|applied)/.test(l)),
    ).toEqual([]);
    expect(out.readBack.filter((c) => c.status !== 'ok')).toEqual([]);
    expect(firstCalls.length).toBeGreaterThan(second.length);
  });

  it('applies a changed variable, a changed schedule (in place, never without a timer) and changed index keys', async () => {
    const env = fake.env(ENV);
    // An older deploy left an index with other keys under the same name.
    env.tables['refunds']!.Indexes.find((i) => i.Name === 'orderId')!.Keys = [
      { Name: 'orderNo', Direction: '1' },
    ];
    const changed = built.map((f) =>
      f.name === 'reconcile'
        ? {
            ...f,
            config: {
              ...f.config,
              triggers: [{ name: 'reconcileEvery5Min', type: 'timer' as const, config: '0 */10 * * * * *' }],
            },
          }
        : f,
    );
    const before = fake.calls.length;
    const out = await deploy({ functions: changed, vars: { ...vars, SHOP_NAME: '新店' } });
    const calls = fake.calls.slice(before);
    expect(
      calls
        .filter((c) => c.action === 'UpdateFunctionConfiguration')
        .map((c) => c.params['FunctionName'])
        .sort(),
    ).toEqual(listFunctions());
    expect(calls.filter((c) => c.action === 'UpdateFunctionCode')).toEqual([]);
    expect(calls.filter((c) => /Trigger/.test(c.action)).map((c) => c.action)).toEqual(['UpdateTrigger']);
    expect(env.functions['reconcile']!.Triggers.map((t) => t.TriggerDesc)).toEqual(['0 */10 * * * * *']);
    const table = calls
      .filter((c) => c.action === 'UpdateTable')
      .map((c) => Object.keys(c.params).find((k) => k.endsWith('Indexes')));
    expect(table).toEqual(['DropIndexes', 'CreateIndexes']);
    expect(env.tables['refunds']!.Indexes.find((i) => i.Name === 'orderId')!.Keys).toEqual([
      { Name: 'orderId', Direction: '1' },
    ]);
    expect(env.functions['whoami']!.Variables.find((v) => v.Key === 'SHOP_NAME')?.Value).toBe('新店');
    expect(out.text).toContain('schedule changed in place');
    expect(out.readBack.filter((c) => c.status !== 'ok')).toEqual([]);
  });

  it('turns authentication off on an existing notify route (fix 4, current HTTP access service)', async () => {
    const route = fake.env(ENV).domains[0]!.Routes.find((r) => r.Path === '/pay/notify')!;
    route.EnableAuth = true;
    const before = fake.calls.length;
    const out = await deploy({ select: only([], ['access.route']) });
    expect(
      fake.calls
        .slice(before)
        .filter((c) => c.action === 'ModifyHTTPServiceRoute')
        .map((c) => c.params['Domain']),
    ).toEqual([
      {
        Domain: `${ENV}.ap-shanghai.app.tcloudbase.com`,
        Routes: [{ Path: '/pay/notify', EnableAuth: false, EnableSafeDomain: false, Enable: true }],
      },
    ]);
    expect(fake.env(ENV).domains[0]!.Routes.find((r) => r.Path === '/pay/notify')!.EnableAuth).toBe(false);
    expect(out.text).toContain('authentication turned off');
  });
});

describe('failures a deploy must survive or report (issue 19, 1–9)', () => {
  it('1: replaces a function left CreateFailed by a failed first install', async () => {
    const fake = cloud();
    fake.failInstall('whoami');
    await expect(deploy({ select: only(['whoami']) })).rejects.toThrow(
      /function\.upload whoami: [\s\S]*云函数创建失败[\s\S]*依赖安装失败/,
    );
    expect(fake.env(ENV).functions['whoami']!.Status).toBe('CreateFailed');
    const before = fake.calls.length;
    const out = await deploy({ select: only(['whoami']) });
    expect(mutations(fake.calls.slice(before))).toEqual([
      'DeleteFunction whoami',
      'SliceUploadFile',
      'CreateFunction whoami',
    ]);
    expect(out.text).toContain('whoami is CreateFailed from an earlier deploy');
    expect(fake.env(ENV).functions['whoami']!.Status).toBe('Active');
  });

  it('2: reports an update whose dependency install failed, and retries it next time', async () => {
    const fake = cloud();
    await deploy({ select: only(['whoami']) });
    const newBuild = built.map((f) => (f.name === 'whoami' ? { ...f, codeHash: 'feedfacefeedface' } : f));
    fake.failInstall('whoami');
    const err = await deploy({ functions: newBuild, select: only(['whoami']) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeployError);
    expect((err as Error).message).toMatch(
      /function\.upload whoami: the code was uploaded but whoami is UpdateFailed: \[InstallDependencyFailed\] 依赖安装失败/,
    );
    expect((err as Error).message).not.toMatch(/✔/);
    const before = fake.calls.length;
    const out = await deploy({ functions: newBuild, select: only(['whoami']) });
    expect(mutations(fake.calls.slice(before))).toEqual([
      'SliceUploadFile',
      'UpdateFunctionCode whoami',
      'UpdateFunctionConfiguration whoami',
    ]);
    expect(out.text).toContain('code updated (the last update had failed) to build feedfacefeedface');
  });

  it('3, 5, 6: on an environment with only HTTP 访问服务（旧）, no routes (APISet null) and no DefaultDomain', async () => {
    const fake = cloud({ httpService: false, legacyDefaultDomain: null });
    const out = await deploy({ select: only(['payNotify', 'refundNotify'], ['access.route']) });
    const describe = fake.actions('DescribeCloudBaseGWAPI');
    expect(describe.length).toBeGreaterThan(0);
    expect(
      fake
        .actions('CreateCloudBaseGWAPI')
        .map((c) => [c.params['Path'], c.params['Name'], c.params['AuthSwitch']]),
    ).toEqual([
      ['/pay/notify', 'payNotify', 2],
      ['/refund/notify', 'refundNotify', 2],
    ]);
    expect(out.text).toContain('HTTP 访问服务（旧）');
    expect(out.text).not.toContain('null');
    // The documented default domain of the legacy service, derived before deploying.
    expect(out.plan.notifyUrls.map((n) => n.url)).toEqual([
      `https://${ENV}.service.tcloudbase.com/pay/notify`,
      `https://${ENV}.service.tcloudbase.com/refund/notify`,
    ]);
    expect(out.readBack.filter((c) => c.name.startsWith('route') && c.status !== 'ok')).toEqual([]);
  });

  it('4: turns authentication off on an existing legacy route', async () => {
    const fake = cloud({ httpService: false });
    await deploy({ select: only(['payNotify', 'refundNotify'], ['access.route']) });
    fake.env(ENV).gatewayApis.find((a) => a.Path === '/refund/notify')!.EnableAuth = true;
    const out = await deploy({ select: only([], ['access.route']) });
    expect(fake.actions('ModifyCloudBaseGWAPIPrivilegeBatch').map((c) => c.params['Options'])).toEqual([
      [{ Key: 'authswitch', Value: 'false' }],
    ]);
    expect(out.readBack.find((c) => c.name === 'route /refund/notify')?.status).toBe('ok');
  });

  it('7: a timer that config.json dropped is removed after; only "does not exist" is ignored', async () => {
    const fake = cloud();
    await deploy({ select: only(['reconcile']) });
    fake.env(ENV).functions['reconcile']!.Triggers.push({
      TriggerName: 'oldTimer',
      Type: 'timer',
      TriggerDesc: '0 0 * * * * *',
      Enable: 1,
      AddTime: '',
      ModTime: '',
    });
    fake.failAction('DeleteTrigger', { code: 'RequestLimitExceeded', message: 'too many requests' });
    await expect(deploy({ select: only(['reconcile']) })).rejects.toThrow(
      /removing timer oldTimer failed: .*too many requests/,
    );
    fake.failAction('DeleteTrigger', { code: 'ResourceNotFound.Trigger' });
    await deploy({ select: only(['reconcile']) });
    // The wanted timer was never deleted: every DeleteTrigger named the stale one.
    expect(fake.actions('DeleteTrigger').map((c) => c.params['TriggerName'])).toEqual([
      'oldTimer',
      'oldTimer',
    ]);
    expect(fake.env(ENV).functions['reconcile']!.Triggers.map((t) => t.TriggerName)).toContain(
      'reconcileEvery5Min',
    );
  });

  it('8: asks the environment for its region; SCF calls and the code upload go there', async () => {
    const fake = cloud({ region: 'ap-guangzhou' }, { tcbRegional: true });
    const out = await deploy({ select: only(['whoami']) });
    expect(out.plan.region).toBe('ap-guangzhou');
    expect(fake.actions('DescribeEnvInfo').map((c) => [c.region, c.error])).toEqual([
      ['ap-shanghai', 'ResourceNotFound'],
      ['ap-guangzhou', undefined],
      ['ap-guangzhou', undefined],
    ]);
    expect(
      fake.calls
        .filter((c) => c.service === 'scf' || c.service === 'cos')
        .every((c) => c.region === 'ap-guangzhou'),
    ).toBe(true);
    expect(fake.actions('SliceUploadFile')[0]?.params['Bucket']).toBe('gztempcos-1253665819');
    expect(out.plan.notifyUrls[0]?.url).toBe(`https://${ENV}.ap-guangzhou.app.tcloudbase.com/pay/notify`);
    await expect(deploy({ vars: { ...vars, CLOUDBASE_REGION: 'ap-shanghai' } })).rejects.toThrow(
      /not found in ap-shanghai/,
    );
  });

  it('9: permissions.openapi, which no API sets, is named as a step for the merchant', async () => {
    cloud();
    const withOpenapi = built.map((f) =>
      f.name === 'createOrder'
        ? { ...f, config: { ...f.config, permissions: { openapi: ['subscribeMessage.send'] } } }
        : f,
    );
    const out = await deploy({ functions: withOpenapi, select: only(['createOrder']) });
    // The functions that send notices declare it in their own config.json too.
    const step = out.plan.manualSteps.find((m) => m.startsWith('createOrder declares permissions.openapi'));
    expect(step).toContain('createOrder declares permissions.openapi [subscribeMessage.send]');
    expect(step).toContain('上传并部署');
  });

  it('refuses a request signed with another key (every request is verified)', async () => {
    const fake = cloud();
    await expect(deploy({ managerFor: managerFor({ ...CREDS, secretKey: 'not-the-key' }) })).rejects.toThrow(
      /AuthFailure|credentials could not be validated/,
    );
    expect(fake.calls.map((c) => c.error)).toEqual(['AuthFailure.SignatureFailure']);
  });
});

describe('an interrupted deploy', () => {
  it('finishes on the next run without redoing what was done', async () => {
    const fake = cloud();
    // The 4th function fails while the first three are being created alongside it.
    const [first, second, third, fourth] = listFunctions();
    fake.failAction(
      'CreateFunction',
      { code: 'InternalError', message: 'connection reset' },
      {
        match: (p) => p['FunctionName'] === fourth,
      },
    );
    await expect(deploy({ concurrency: 4 })).rejects.toThrow(
      new RegExp(`function\\.upload ${fourth}: [\\s\\S]*connection reset`),
    );
    const made = Object.keys(fake.env(ENV).functions).sort();
    expect(made).toEqual([first, second, third]);
    expect(fake.env(ENV).domains[0]!.Routes).toEqual([]);
    expect(fake.env(ENV).tables).toEqual({});
    const before = fake.calls.length;
    const out = await deploy();
    const creates = fake.calls
      .slice(before)
      .filter((c) => c.action === 'CreateFunction')
      .map((c) => c.params['FunctionName']);
    expect(creates.sort()).toEqual(listFunctions().filter((f) => !made.includes(f)));
    expect(fake.calls.slice(before).filter((c) => c.action === 'UpdateFunctionCode')).toEqual([]);
    expect(out.readBack.filter((c) => c.status !== 'ok')).toEqual([]);
  });
});
