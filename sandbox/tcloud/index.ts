/**
 * The offline Tencent Cloud for rehearsing a deploy: `npm run deploy -- --sandbox` and
 * `npm run doctor -- --deployed --sandbox` use it with the state kept in .data/tcloud/, and
 * the deploy tests use it in memory. See fake.ts for what it checks.
 */
import { type FakeOptions, FakeTencentCloud } from './fake';
import { installTencentCloudFake } from './hook';
import { enableInvoke, startGateway } from './invoke';
import type { EnvSpec } from './model';

export { FakeTencentCloud, type RecordedCall } from './fake';
export { installTencentCloudFake } from './hook';
export { enableInvoke, startGateway } from './invoke';
export { defaultHttpDomain, type EnvSpec } from './model';
export { ApiError, verifyTc3 } from './signature';

/** The sandbox's own API key: the fake verifies every signature made with it. */
export const SANDBOX_CREDENTIALS = {
  secretId: 'AKIDsandboxdeploy00000000000000000',
  secretKey: 'sandbox-secret-key-0000000000000',
};

export interface SandboxCloud {
  fake: FakeTencentCloud;
  credentials: typeof SANDBOX_CREDENTIALS;
  /** Restores manager-node's network layer. */
  uninstall(): void;
}

/** A fake with one environment, hooked into manager-node in this process. */
export function startSandboxCloud(env: EnvSpec, opts: Partial<FakeOptions> = {}): SandboxCloud {
  const fake = new FakeTencentCloud({ credentials: [SANDBOX_CREDENTIALS], envs: [env], ...opts });
  enableInvoke(fake);
  const uninstall = installTencentCloudFake(fake);
  return { fake, credentials: SANDBOX_CREDENTIALS, uninstall };
}

export { startGateway as startSandboxGateway };
