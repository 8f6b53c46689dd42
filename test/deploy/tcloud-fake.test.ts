/**
 * The fake Tencent Cloud refuses what the real API refuses: bad signatures, unknown or
 * mistyped parameters, values outside the documented limits. Requests are made by the real
 * manager-node (its generic signed call), so these are the checks a deploy meets.
 */
import { createRequire } from 'node:module';
import CloudBase from '@cloudbase/manager-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeTencentCloud } from '../../sandbox/tcloud/fake';
import { installTencentCloudFake } from '../../sandbox/tcloud/hook';
import { verifyTc3 } from '../../sandbox/tcloud/signature';

const CREDS = { secretId: 'AKIDfaketest0000000000000000000000', secretKey: 'fake-test-key' };
const ENV = 'shop-1a2b3c';
let fake: FakeTencentCloud;
let restore: () => void;

beforeAll(() => {
  fake = new FakeTencentCloud({ credentials: [CREDS], envs: [{ envId: ENV, region: 'ap-shanghai' }] });
  restore = installTencentCloudFake(fake);
  // A function to configure: created directly in the fake's state.
  fake.env(ENV).functions['whoami'] = {
    FunctionName: 'whoami',
    Namespace: ENV,
    Runtime: 'Nodejs24.11',
    Handler: 'index.main',
    Timeout: 5,
    MemorySize: 256,
    Description: '',
    InstallDependency: 'FALSE',
    Variables: [],
    Status: 'Active',
    StatusDesc: '',
    StatusReasons: [],
    Triggers: [],
    AddTime: '',
    ModTime: '',
  };
});
afterAll(() => restore());

const scf = (region = 'ap-shanghai') =>
  new CloudBase({ ...CREDS, envId: ENV, region }).commonService('scf', '2018-04-16');
const call = (Action: string, Param: Record<string, unknown>, region?: string) =>
  scf(region)
    .call({ Action, Param: { Namespace: ENV, FunctionName: 'whoami', ...Param } })
    .then(
      () => 'ok',
      (e: { code?: string; message?: string }) => `${e.code}: ${e.message?.replace(/^\[\w+\] /, '')}`,
    );

describe('the fake checks parameters as the SCF API documents them', () => {
  it('timeout 1 to 900 seconds, an integer', async () => {
    expect(await call('UpdateFunctionConfiguration', { Timeout: 900 })).toBe('ok');
    fake.env(ENV).functions['whoami']!.pending = undefined;
    fake.env(ENV).functions['whoami']!.Status = 'Active';
    expect(await call('UpdateFunctionConfiguration', { Timeout: 901 })).toMatch(
      /^InvalidParameterValue: Timeout must be an integer from 1 to 900/,
    );
    expect(await call('UpdateFunctionConfiguration', { Timeout: '30' })).toMatch(
      /^InvalidParameter: The value type of parameter `Timeout`/,
    );
  });

  it('environment variables: at most 4 KB in all, non-empty values', async () => {
    const big = { Variables: [{ Key: 'ADMIN_OPENIDS', Value: 'o'.repeat(4096) }] };
    expect(await call('UpdateFunctionConfiguration', { Environment: big })).toMatch(
      /^InvalidParameterValue\.EnvironmentExceededLimit: The environment variables take 4109 bytes; at most 4096/,
    );
    expect(
      await call('UpdateFunctionConfiguration', { Environment: { Variables: [{ Key: 'A', Value: '' }] } }),
    ).toMatch(/non-empty string value/);
  });

  it('a timer takes a 7-field cron', async () => {
    const triggers = (desc: string) =>
      call('BatchCreateTrigger', {
        Triggers: JSON.stringify([{ TriggerName: 't1', Type: 'timer', TriggerDesc: desc }]),
        Count: 1,
      });
    expect(await triggers('0 */5 * * * *')).toMatch(
      /^InvalidParameterValue: TriggerDesc 0 \*\/5 \* \* \* \* is not a 7-field cron/,
    );
    expect(await triggers('0 */5 * * * * *')).toBe('ok');
    expect(await triggers('0 */5 * * * * *')).toMatch(/^ResourceInUse\.Trigger/);
  });

  it('refuses names it does not know, and SCF calls outside the environment region', async () => {
    expect(await call('GetFunction', { ShowCode: 'TRUE', Limit: 5 })).toBe(
      'UnknownParameter: The parameter `Limit` is not recognized.',
    );
    expect(await call('GetFunction', {}, 'ap-guangzhou')).toBe(
      'ResourceNotFound.Namespace: Namespace shop-1a2b3c does not exist in ap-guangzhou.',
    );
    expect(await call('UpdateFunctionConfiguration', { Runtime: 'Nodejs16.13' })).toMatch(
      /cannot be changed/,
    );
  });
});

describe('the fake verifies TC3-HMAC-SHA256 signatures', () => {
  const secrets = new Map([[CREDS.secretId, CREDS.secretKey]]);
  // One request signed by manager-node, captured below its signing.
  let signed: { url: string; headers: Record<string, string>; body: string };
  beforeAll(async () => {
    const http = createRequire(createRequire(__filename).resolve('@cloudbase/manager-node'))(
      './utils/http-request',
    ) as {
      fetch: (url: string, config: { headers: Record<string, string>; body: string }) => Promise<unknown>;
    };
    const installed = http.fetch;
    http.fetch = async (url, config) => {
      signed = {
        url,
        headers: Object.fromEntries(Object.entries(config.headers).map(([k, v]) => [k, String(v)])),
        body: config.body,
      };
      return installed(url, config);
    };
    await call('GetFunction', { ShowCode: 'TRUE' });
    http.fetch = installed;
  });
  const now = () => Number(signed.headers['X-TC-Timestamp']);

  it('accepts the request manager-node signed', () => {
    expect(verifyTc3({ method: 'POST', ...signed }, secrets, { nowSeconds: now() })).toMatchObject({
      service: 'scf',
      action: 'GetFunction',
      region: 'ap-shanghai',
    });
  });

  it('refuses a changed body, another key, an old timestamp', () => {
    const v = (patch: Partial<typeof signed>, nowSeconds = now(), keys = secrets) => {
      try {
        verifyTc3({ method: 'POST', ...signed, ...patch }, keys, { nowSeconds });
        return 'ok';
      } catch (e) {
        return (e as { code: string }).code;
      }
    };
    expect(v({ body: signed.body.replace('whoami', 'payNotify') })).toBe('AuthFailure.SignatureFailure');
    expect(v({}, now(), new Map([[CREDS.secretId, 'another-key']]))).toBe('AuthFailure.SignatureFailure');
    expect(v({}, now(), new Map())).toBe('AuthFailure.SecretIdNotFound');
    expect(v({}, now() + 301)).toBe('AuthFailure.SignatureExpire');
  });
});
