/**
 * The real, unmodified wx-server-sdk pointed at an emulator. The SDK's init is global to the
 * process, so each test file (vitest runs files in separate processes) connects once.
 */
import { createRequire } from 'node:module';

// No metadata.tencentyun.com here: tell the node-sdk it is on Tencent Cloud already.
process.env['TENCENTCLOUD'] = 'true';
process.env['SILENCE'] = 'true';

// biome-ignore lint/suspicious/noExplicitAny: the SDK's typings are incomplete (reference §1.1).
export type Any = any;

const require = createRequire(import.meta.url);

export interface Sdk {
  cloud: Any;
  /** database({throwOnNotFound:false}), as cloudfunctions/shared/runtime/cloud.ts uses it. */
  db: Any;
  /** The SDK's default: doc().get() of a missing id rejects. */
  dbThrowing: Any;
}

export function connectSdk(serviceUrl: string): Sdk {
  const cloud = require('wx-server-sdk');
  cloud.init({ env: 'test', secretId: 'x', secretKey: 'x', serviceUrl, throwOnNotFound: false });
  return {
    cloud,
    db: cloud.database({ throwOnNotFound: false }),
    dbThrowing: cloud.database({ throwOnNotFound: true }),
  };
}

/** The rejection of a promise, or a failure if it resolved. */
export async function rejectionOf(p: Promise<unknown>): Promise<Any> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to reject, it resolved');
}
