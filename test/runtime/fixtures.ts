/**
 * Tiny cloud functions written as build output
 * (dist/cloudfunctions/<fn>/{index.js,package.json,config.json}), each requiring the real
 * wx-server-sdk the way our bundles do, and recording the configured runtime's Node major as
 * the build does.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configuredRuntime, enginesRange } from '../../scripts/target';

const SDK_INIT = `const cloud = require('wx-server-sdk');
cloud.init({ env: cloud.DYNAMIC_CURRENT_ENV, throwOnNotFound: false });
`;

const FUNCTIONS: Record<string, { code: string; config?: Record<string, unknown> }> = {
  // Who am I, before and after an await (another caller may run meanwhile), plus warm state.
  ctx: {
    code: `${SDK_INIT}let calls = 0;
exports.main = async (event) => {
  calls += 1;
  const before = cloud.getWXContext();
  if (event.delayMs) await new Promise((r) => setTimeout(r, event.delayMs));
  return { before, after: cloud.getWXContext(), calls, event, shop: process.env.SHOP_NAME || null };
};
`,
  },
  db: {
    code: `${SDK_INIT}exports.main = async (event) => {
  const db = cloud.database({ throwOnNotFound: false });
  for (let i = 0; i < event.n; i++) await db.collection('items').add({ data: { by: event.tag } });
  return (await db.collection('items').where({ by: event.tag }).count()).total;
};
`,
  },
  slow: {
    code: `exports.main = (event) => new Promise((r) => setTimeout(() => r('late'), event.ms));\n`,
    config: { timeout: 1 },
  },
  // Which Node runs it, and the SCF context it gets (timeout 2 s).
  node: {
    code: `exports.main = async (event, context) => {
  const first = context.getRemainingTimeInMillis();
  await new Promise((r) => setTimeout(r, event.waitMs || 0));
  return { node: process.versions.node, limit: context.time_limit_in_ms, requestId: context.request_id, fn: context.function_name, first, after: context.getRemainingTimeInMillis() };
};
`,
    config: { timeout: 2 },
  },
  // A module that takes 1.5 s to load, with a 1 s timeout: SCF does not count init against it.
  slowInit: {
    code: `Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
exports.main = async (event, context) => ({ remaining: context.getRemainingTimeInMillis() });
`,
    config: { timeout: 1 },
  },
  boom: { code: `exports.main = async () => { throw new Error('kaboom'); };\n` },
  broken: { code: `throw new Error('cannot load');\n` },
  http: {
    code: `${SDK_INIT}exports.main = async (event) => {
  switch (event.queryStringParameters && event.queryStringParameters.reply) {
    case 'integration':
      return { statusCode: 201, headers: { 'Content-Type': 'text/xml', 'X-Trace': 't1' }, body: '<xml><return_code>SUCCESS</return_code></xml>' };
    case 'binary':
      return { statusCode: 200, headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from([0, 1, 254, 255]).toString('base64'), isBase64Encoded: true };
    case 'text':
      return 'plain words';
    default:
      return { event, ctx: cloud.getWXContext() };
  }
};
`,
  },
  tick: {
    code: `${SDK_INIT}exports.main = async (event) => {
  await cloud.database().collection('ticks').add({ data: { event, ctx: cloud.getWXContext() } });
  return { event, ctx: cloud.getWXContext() };
};
`,
    config: { timeout: 5, triggers: [{ name: 'everySecond', type: 'timer', config: '* * * * * * *' }] },
  },
};

/** Writes the fixture functions into a fresh folder and returns it. */
export function writeFixtureFunctions(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fns-'));
  for (const [name, fn] of Object.entries(FUNCTIONS)) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'index.js'), fn.code);
    writeFileSync(join(dir, name, 'config.json'), JSON.stringify(fn.config ?? {}));
    writeFileSync(
      join(dir, name, 'package.json'),
      JSON.stringify({ name, main: 'index.js', engines: { node: enginesRange(configuredRuntime()) } }),
    );
  }
  return dir;
}
