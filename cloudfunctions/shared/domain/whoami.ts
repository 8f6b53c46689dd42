import type { WhoamiResult } from '../contract';
import { AppError } from '../errors';
import type { Caller } from '../runtime/callable';

/** Admins are the openids listed in ADMIN_OPENIDS (comma separated). */
export function adminOpenids(env: NodeJS.ProcessEnv = process.env): Set<string> {
  return new Set(
    (env['ADMIN_OPENIDS'] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

export async function whoami(_event: Record<string, unknown>, caller: Caller): Promise<WhoamiResult> {
  if (!caller.openid) throw new AppError('UNAUTHENTICATED', 'whoami must be called from the mini-program');
  return { isAdmin: adminOpenids().has(caller.openid), openid: caller.openid };
}
