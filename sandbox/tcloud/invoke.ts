/**
 * What the fake needs to run deployed code: SCF Invoke (the management API's call, as
 * `doctor --deployed` makes it to whoami) and the HTTP access gateway (a GET on a notify URL).
 * The uploaded zip is unpacked and its handler run in a child process with exactly the
 * function's variables and its timeout, so a function that would not start on CloudBase with
 * that configuration does not start here either.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FakeTencentCloud } from './fake';
import type { EnvState, FunctionState } from './model';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const RUNNER = `
const [file, handler] = process.argv.slice(1);
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', async () => {
  const event = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  try {
    const mod = require(file);
    const result = await mod[handler](event, { namespace: process.env.SCF_NAMESPACE });
    process.stdout.write('\\n@@RESULT@@' + JSON.stringify({ result: result === undefined ? null : result }));
  } catch (e) {
    process.stdout.write('\\n@@RESULT@@' + JSON.stringify({ error: String(e && e.stack || e) }));
  }
});
`;

/** Installs an invoker on `fake` that runs deployed code with the function's configuration. */
export function enableInvoke(fake: FakeTencentCloud): void {
  fake.invoker = (env: EnvState, f: FunctionState, event: unknown, context: Record<string, string> = {}) => {
    const files = fake.codeFiles(env.EnvId, f.FunctionName);
    const dir = mkdtempSync(join(tmpdir(), `scf-${f.FunctionName}-`));
    const started = Date.now();
    try {
      for (const [name, data] of Object.entries(files)) {
        if (name.endsWith('/')) continue;
        mkdirSync(dirname(join(dir, name)), { recursive: true });
        writeFileSync(join(dir, name), data);
      }
      const [file, handler] = f.Handler.split('.');
      const r = spawnSync(process.execPath, ['-e', RUNNER, join(dir, `${file}.js`), handler ?? 'main'], {
        input: JSON.stringify(event ?? {}),
        encoding: 'utf8',
        timeout: f.Timeout * 1000,
        env: {
          PATH: process.env['PATH'] ?? '',
          // Dependencies 云端安装依赖 would install: the repository's (the same pinned versions).
          NODE_PATH: join(root, 'node_modules'),
          SCF_NAMESPACE: f.Namespace,
          SCF_FUNCTIONNAME: f.FunctionName,
          TENCENTCLOUD_RUNENV: 'SCF',
          TENCENTCLOUD_REGION: env.Region,
          ...Object.fromEntries(f.Variables.map((v) => [v.Key, v.Value])),
          ...context,
        },
      });
      const out = r.stdout ?? '';
      const at = out.lastIndexOf('\n@@RESULT@@');
      const log = (at >= 0 ? out.slice(0, at) : out) + (r.stderr ?? '');
      if (r.error || at < 0) {
        const why = r.error ? String(r.error.message) : `exited ${r.status}: ${(r.stderr ?? '').slice(-500)}`;
        return { error: `${f.FunctionName} did not answer: ${why}`, log, durationMs: Date.now() - started };
      }
      const parsed = JSON.parse(out.slice(at + '\n@@RESULT@@'.length)) as {
        result?: unknown;
        error?: string;
      };
      return { ...parsed, log, durationMs: Date.now() - started };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

/**
 * The HTTP access gateway for the fake's domains: the Host header picks the environment and
 * domain, the path the route. Authentication on answers 401, no route 404, as the platform's
 * gateway does; otherwise the function runs with an HTTP access event.
 */
export async function startGateway(fake: FakeTencentCloud): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const host = String(req.headers.host ?? '').split(':')[0];
      const url = new URL(req.url ?? '/', `http://${host}`);
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      let target: { env: EnvState; fn: string; auth: boolean; enabled: boolean } | undefined;
      for (const env of Object.values(fake.state.envs)) {
        const domain = env.domains.find((d) => d.Domain === host);
        const route = domain?.Routes.find((r) => r.Path === url.pathname);
        if (route)
          target = { env, fn: route.UpstreamResourceName, auth: route.EnableAuth, enabled: route.Enable };
        if (!target && host === env.legacyDefaultDomain) {
          const api = env.gatewayApis.find((a) => a.Path === url.pathname);
          if (api) target = { env, fn: api.Name, auth: api.EnableAuth, enabled: true };
        }
        if (target) break;
      }
      if (!target?.enabled)
        return json(404, { code: 'INVALID_PATH', message: `no route for ${url.pathname}` });
      if (target.auth)
        return json(401, { code: 'INVALID_AUTH', message: 'authentication is required for this path' });
      const f = target.env.functions[target.fn];
      if (f?.Status !== 'Active' || !fake.invoker) {
        return json(502, {
          code: 'FUNCTION_UNAVAILABLE',
          message: `${target.fn} is ${f?.Status ?? 'missing'}`,
        });
      }
      const body = Buffer.concat(chunks);
      const event = {
        path: url.pathname,
        httpMethod: req.method,
        headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])),
        queryStringParameters: Object.fromEntries(url.searchParams),
        requestContext: { envId: target.env.EnvId, appId: target.env.AppId },
        body: body.toString('base64'),
        isBase64Encoded: true,
      };
      const r = fake.invoker(target.env, f, event);
      if (r.error) return json(502, { code: 'FUNCTION_ERROR', message: r.error.slice(0, 500) });
      const out = r.result as { statusCode?: number; headers?: Record<string, string>; body?: string } | null;
      if (out && typeof out === 'object' && typeof out.statusCode === 'number') {
        res.writeHead(out.statusCode, out.headers ?? {});
        res.end(out.body ?? '');
      } else json(200, out);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
