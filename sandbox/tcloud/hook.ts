/**
 * Puts the fake below @cloudbase/manager-node's signing: its HTTP layer
 * (lib/utils/http-request `fetch`, which CloudService calls with the signed request) and the
 * COS client's `sliceUploadFile` (how it uploads function code to SCF's temporary bucket).
 * manager-node itself, and our executor on top of it, run unchanged.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FakeTencentCloud } from './fake';

const requireHere = createRequire(import.meta.url);

interface HttpRequestModule {
  fetch: (url: string, config?: Record<string, unknown>, proxy?: unknown) => Promise<unknown>;
}
type Callback = (err: unknown, data?: unknown) => void;
interface CosProto {
  sliceUploadFile: (this: CosInstance, params: Record<string, unknown>, cb: Callback) => void;
}
interface CosInstance {
  options: { getAuthorization?: (opts: unknown, cb: (auth: unknown) => void) => void };
}

/** manager-node's own copies of its dependencies (the ones it really calls). */
function managerModules(): { http: HttpRequestModule; cos: { prototype: CosProto } } {
  const managerMain = requireHere.resolve('@cloudbase/manager-node');
  const fromManager = createRequire(managerMain);
  return {
    http: fromManager('./utils/http-request') as HttpRequestModule,
    cos: fromManager('cos-nodejs-sdk-v5') as { prototype: CosProto },
  };
}

let installed: FakeTencentCloud | undefined;

/** Routes manager-node's requests to `fake`; returns the function that restores the originals. */
export function installTencentCloudFake(fake: FakeTencentCloud): () => void {
  if (installed) throw new Error('a Tencent Cloud fake is already installed in this process');
  const { http, cos } = managerModules();
  const originalFetch = http.fetch;
  const originalUpload = cos.prototype.sliceUploadFile;
  installed = fake;

  http.fetch = async (url, config = {}) => {
    const headers = Object.fromEntries(
      Object.entries((config['headers'] as Record<string, unknown> | undefined) ?? {}).map(([k, v]) => [
        k,
        String(v),
      ]),
    );
    // The body crosses a process boundary in production: hand the fake a copy, as text.
    const body = typeof config['body'] === 'string' ? config['body'] : '';
    const res = fake.handle({ method: String(config['method'] ?? 'GET'), url, headers, body });
    // node-fetch parses the JSON text; do the same so no object is shared with the fake.
    return JSON.parse(JSON.stringify(res));
  };

  cos.prototype.sliceUploadFile = function sliceUploadFile(this: CosInstance, params, cb) {
    const getAuthorization = this.options.getAuthorization;
    if (!getAuthorization) {
      cb(Object.assign(new Error('no credentials for COS'), { code: 'AccessDenied' }));
      return;
    }
    getAuthorization({ Bucket: params['Bucket'], Region: params['Region'], Key: params['Key'] }, (auth) => {
      try {
        const body = readFileSync(String(params['FilePath']));
        const data = fake.cosUpload({
          Bucket: String(params['Bucket']),
          Region: String(params['Region']),
          Key: String(params['Key']),
          body,
          authorization: typeof auth === 'string' ? auth : JSON.stringify(auth),
        });
        setImmediate(() => cb(null, { ...data, statusCode: 200 }));
      } catch (e) {
        setImmediate(() => cb(e));
      }
    });
  };

  return () => {
    http.fetch = originalFetch;
    cos.prototype.sliceUploadFile = originalUpload;
    installed = undefined;
  };
}
