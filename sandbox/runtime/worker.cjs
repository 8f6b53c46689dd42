/**
 * One CloudBase function instance (SCF container) = one worker thread.
 *
 * Plain CommonJS on purpose: it runs in a fresh thread without a TypeScript loader, and it
 * must load the built function exactly as the platform does (require index.js, call main).
 *
 * A worker has its own copy of process.env, and the parent sends it one invocation at a
 * time, so the WX_* identity that getWXContext() reads belongs to exactly one caller. Module
 * state (an initialised SDK, caches) survives between invocations like a warm instance.
 */
const { parentPort, workerData } = require('node:worker_threads');
const Module = require('node:module');

// Dependencies resolve from the function folder first (its own node_modules, as after
// 云端安装依赖), then from the project's node_modules.
if (workerData.nodePath) {
  process.env.NODE_PATH = workerData.nodePath;
  Module._initPaths();
}

// Load at start-up, before any event, like SCF's init phase: its time is reported apart from
// the invocation and does not count against the function's timeout.
let loaded = null;
try {
  loaded = require(workerData.indexPath);
  if (typeof loaded.main !== 'function') {
    throw new Error(`${workerData.indexPath} does not export main(event, context)`);
  }
  parentPort.postMessage({ type: 'ready', ok: true });
} catch (e) {
  const err = e instanceof Error ? e : new Error(String(e));
  parentPort.postMessage({
    type: 'ready',
    ok: false,
    error: { message: err.message, stack: err.stack || '' },
  });
}

/** The platform answers with JSON: Dates become strings, functions and undefined vanish. */
function asJson(value) {
  if (value === undefined) return null;
  return JSON.parse(JSON.stringify(value));
}

parentPort.on('message', async (msg) => {
  for (const [key, value] of Object.entries(msg.env)) {
    if (value === null) delete process.env[key];
    else process.env[key] = value;
  }
  try {
    const result = await loaded.main(msg.event, msg.context);
    parentPort.postMessage({ type: 'result', id: msg.id, ok: true, result: asJson(result) });
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    parentPort.postMessage({
      type: 'result',
      id: msg.id,
      ok: false,
      error: { name: err.name, message: err.message, stack: err.stack || '' },
    });
  }
});
