/**
 * What the bundled build leaves out of wx-server-sdk, or loads only when first used, and why
 * each is safe. `npm run bench` measured where a cold start goes: wx-server-sdk loads about 500
 * modules, and every one of them runs at require time, used or not. The shop's functions
 * reach the SDK only through cloudfunctions/shared/runtime/cloud.ts (init, getWXContext,
 * database), plus `cloud.openapi` for subscribe messages and `cloud.cloudPay`.
 *
 * Three kinds of trim, each tied to one file of the SDK's dependency tree as it is installed:
 * - `stub`: the module is replaced by one that throws `SDK_TRIMMED` (naming this file) the
 *   moment anything reads from it. Only for code that no wx-server-sdk API the shop calls can
 *   reach, so a stub is never touched; if a later change does touch one, it fails loudly.
 * - `lazy`: the listed `require()`s of the file become a proxy that requires on first use.
 *   The code stays in the bundle and works as before; it just costs nothing until used.
 * - `json`: a large JSON file is embedded as a string for JSON.parse instead of an object
 *   literal. Same data; V8 skims a string literal far faster than it parses a literal.
 *
 * Every trim must apply exactly as written, or the build fails: an SDK upgrade that moves a
 * file gets a review here instead of a quietly different bundle.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Plugin } from 'esbuild';

export interface SdkTrim {
  kind: 'stub' | 'lazy' | 'json';
  /** The package chain from wx-server-sdk down to the package holding `file`. */
  via: string[];
  /** The file inside the last package of `via`. */
  file: string;
  /** For `lazy`: the require() specifiers in `file` to defer. */
  requires?: string[];
  /** The only SDK call paths that reach it. */
  reachedBy: string;
  /** What it pulls in, and why leaving it out (or deferring it) is safe for this shop. */
  why: string;
}

const NODE_SDK = ['wx-server-sdk', '@cloudbase/node-sdk'];

export const SDK_TRIMS: readonly SdkTrim[] = [
  {
    kind: 'stub',
    via: NODE_SDK,
    file: 'dist/ai/index.js',
    reachedBy: '`cloud.ai()` only',
    why:
      'The AI model client: @cloudbase/ai, @cloudbase/app, @cloudbase/utilities, @cloudbase/adapter-wx_mp, ' +
      'web-streams-polyfill and text-encoding-shim, about 320 KB minified and the largest share of load ' +
      'time. A payment backend has no use for it, and nothing here calls cloud.ai().',
  },
  {
    kind: 'stub',
    via: [...NODE_SDK, '@cloudbase/wx-cloud-client-sdk'],
    file: 'lib/wxCloudClientSDK.cjs.js',
    reachedBy: "the node-sdk's `models`, `mysql` and `rdb`, which wx-server-sdk never exposes",
    why:
      'Data models and MySQL clients, built in every CloudBase init inside a try/catch that ignores a ' +
      'failure. wx-server-sdk exports no way to reach them, so the stub only makes that catch fire.',
  },
  {
    kind: 'stub',
    via: [...NODE_SDK, 'jsonwebtoken'],
    file: 'index.js',
    reachedBy: "the node-sdk's `auth().createTicket()` (custom login), which wx-server-sdk never calls",
    why: 'JWT signing for custom-login tickets, with jws, jwa, semver and seven lodash helpers.',
  },
  {
    kind: 'lazy',
    via: NODE_SDK,
    file: 'dist/storage/index.js',
    requires: ['xml2js'],
    reachedBy: '`cloud.uploadFile()` (it parses COS’s XML answer)',
    why: 'xml2js with xmlbuilder and sax, about 100 KB. Cloud storage keeps working; it loads on first upload.',
  },
  {
    kind: 'lazy',
    via: NODE_SDK,
    file: 'dist/cloudbase.js',
    requires: ['axios'],
    reachedBy: "the node-sdk's `requestClient` shim for CloudBase extensions",
    why: 'axios, follow-redirects and zlib. Every TCB request goes through the node-sdk’s own http client.',
  },
  {
    kind: 'lazy',
    via: NODE_SDK,
    file: 'dist/utils/metadata.js',
    requires: ['axios'],
    reachedBy: 'the Tencent Cloud metadata lookup, made only outside SCF when TENCENTCLOUD is not "true"',
    why: 'The other axios import; inside a cloud function the runtime variables answer first.',
  },
  {
    kind: 'lazy',
    via: NODE_SDK,
    file: 'dist/utils/request-core.js',
    requires: ['https-proxy-agent', 'http-proxy-agent', 'form-data'],
    reachedBy: 'requests through HTTP(S)_PROXY; multipart requests (cloud.openapi, cloud.cloudPay, storage)',
    why:
      'The proxy agents bring debug and supports-color; form-data brings mime-types, mime-db and a ' +
      'dozen get-intrinsic polyfills. Subscribe messages and cloudPay load form-data on their first call.',
  },
  {
    kind: 'lazy',
    via: [...NODE_SDK, '@cloudbase/database'],
    file: 'dist/commonjs/realtime/virtual-websocket-client.js',
    requires: ['lodash.set', 'lodash.unset', 'lodash.clonedeep'],
    reachedBy: '`collection.watch()` (realtime listeners)',
    why: 'Three lodash builds used only to apply realtime change events to a local copy.',
  },
  {
    kind: 'lazy',
    via: ['wx-server-sdk'],
    file: 'index.js',
    requires: ['mime-db'],
    reachedBy: '`cloud.openapi` calls that upload media (a Buffer with a content type)',
    why: 'The 180 KB MIME table, read only to name an uploaded file’s extension.',
  },
  {
    kind: 'json',
    via: ['wx-server-sdk', 'mime-db'],
    file: 'db.json',
    reachedBy: 'as above, and form-data’s mime-types when a multipart part has a file name',
    why: 'Even deferred, its 134 KB object literal is parsed at load; as a JSON string it is skimmed.',
  },
];

/** Thrown by a stubbed module when anything reads from it. */
export const TRIMMED_CODE = 'SDK_TRIMMED';

function packageRoot(from: string, name: string): string {
  try {
    return dirname(createRequire(join(from, 'package.json')).resolve(`${name}/package.json`));
  } catch (cause) {
    throw new Error(`sdk-trim: cannot resolve ${name} from ${from}`, { cause });
  }
}

/** The absolute path each trim applies to, following the SDK's own dependency resolution. */
export function trimTargets(projectRoot: string): Map<string, SdkTrim[]> {
  const targets = new Map<string, SdkTrim[]>();
  for (const t of SDK_TRIMS) {
    let dir = projectRoot;
    for (const name of t.via) dir = packageRoot(dir, name);
    const path = join(dir, t.file);
    targets.set(path, [...(targets.get(path) ?? []), t]);
  }
  return targets;
}

function stubSource(path: string, t: SdkTrim): string {
  const message =
    `${t.via.at(-1)}/${t.file} was trimmed from this bundle (scripts/sdk-trim.ts; reached by ${t.reachedBy}). ` +
    'Use it only after removing the trim, or build with `npm run build -- --sdk external`.';
  return `"use strict";
// Trimmed from the bundle: ${path.split('node_modules/').at(-1)}
function trimmed() {
  const e = new Error(${JSON.stringify(message)});
  e.code = ${JSON.stringify(TRIMMED_CODE)};
  throw e;
}
module.exports = new Proxy(function () {}, {
  get(_, key) {
    // CommonJS interop helpers probe these before anything is used.
    if (key === '__esModule' || key === 'then' || typeof key === 'symbol') return undefined;
    return trimmed();
  },
  has: () => false,
  apply: trimmed,
  construct: trimmed,
});
`;
}

const LAZY_HELPER = `function __sdkTrimLazy(load) {
  let m;
  const get = () => (m === undefined ? (m = load()) : m);
  return new Proxy({}, {
    get: (_, k) => get()[k],
    set: (_, k, v) => { get()[k] = v; return true; },
    has: (_, k) => k in get(),
    ownKeys: () => Reflect.ownKeys(get()),
    getOwnPropertyDescriptor: (_, k) => {
      const d = Object.getOwnPropertyDescriptor(get(), k);
      if (d) d.configurable = true;
      return d;
    },
  });
}
`;

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function lazySource(path: string, source: string, t: SdkTrim): string {
  let out = source;
  for (const spec of t.requires ?? []) {
    // `const x = require("m");`, `const x = __importDefault(require("m"));` (tsc's output), and
    // webpack's external `module.exports = require("m");`.
    const re = new RegExp(
      `((?:\\b(?:const|let|var)\\s+[\\w$]+|\\bmodule\\.exports)\\s*=\\s*)((?:__importDefault|__importStar)\\()?require\\((["'])${escapeRe(spec)}\\3\\)(\\))?;`,
      'g',
    );
    const hits = [...out.matchAll(re)].length;
    if (hits !== 1) {
      throw new Error(`sdk-trim: expected one require("${spec}") in ${path}, found ${hits}; review the trim`);
    }
    out = out.replace(
      re,
      (_m, lhs: string, wrap: string | undefined, q: string, close: string | undefined) =>
        `${lhs}__sdkTrimLazy(() => ${wrap ?? ''}require(${q}${spec}${q})${close ?? ''});`,
    );
  }
  return out;
}

/**
 * The esbuild plugin. `applied` collects the trims that took effect, so the build can refuse
 * a bundle in which one silently did not.
 */
export function sdkTrimPlugin(projectRoot: string, applied: Set<SdkTrim>): Plugin {
  const targets = trimTargets(projectRoot);
  const filter = new RegExp(`^(?:${[...targets.keys()].map(escapeRe).join('|')})$`);
  return {
    name: 'sdk-trim',
    setup(b) {
      b.onLoad({ filter }, (args) => {
        const trims = targets.get(args.path);
        if (!trims) return undefined;
        const stub = trims.find((t) => t.kind === 'stub');
        if (stub) {
          applied.add(stub);
          return { contents: stubSource(args.path, stub), loader: 'js' };
        }
        const json = trims.find((t) => t.kind === 'json');
        if (json) {
          applied.add(json);
          const text = JSON.stringify(JSON.parse(readFileSync(args.path, 'utf8')));
          return { contents: `module.exports = JSON.parse(${JSON.stringify(text)});`, loader: 'js' };
        }
        let source = readFileSync(args.path, 'utf8');
        for (const t of trims) {
          source = lazySource(args.path, source, t);
          applied.add(t);
        }
        // Appended, not prepended: a function declaration is hoisted, and the file's own
        // "use strict" must stay its first statement.
        return { contents: `${source}\n${LAZY_HELPER}`, loader: 'js' };
      });
    },
  };
}
