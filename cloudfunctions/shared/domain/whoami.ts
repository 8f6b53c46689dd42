import type { WhoamiResult } from '../contract';
import type { Caller } from '../runtime/callable';
import type { Deps } from './deps';
import { onlyFields, requireOpenid } from './validate';

export async function whoami(
  deps: Deps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<WhoamiResult> {
  onlyFields(event, []);
  const openid = requireOpenid(caller);
  return { isAdmin: deps.config.adminOpenids.has(openid), openid };
}
