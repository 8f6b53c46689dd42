/**
 * One CloudBase function instance (SCF container) = one child process, started with the Node
 * binary of the configured runtime (see node.ts), so the function runs on the Node major it
 * is deployed on, not on whatever Node runs the tests.
 *
 * Plain CommonJS on purpose: it runs without a TypeScript loader, on a Node that may be newer
 * or older than the host's, and it must load the built function exactly as the platform
 * does (require index.js, call main(event, context)).
 *
 * The parent sends one invocation at a time, so the WX_* identity in process.env that
 * getWXContext() reads belongs to exactly one caller. Module state (an initialised SDK,
 * caches) survives between invocations like a warm instance.
 */
const indexPath = process.argv[2];

// Without the parent there is no one to answer: end rather than linger as an orphan.
process.on('disconnect', () => process.exit(0));

// Load at start-up, before any event, like SCF's init phase: its time is reported apart from
// the invocation and does not count against the function's timeout.
let loaded = null;
try {
  loaded = require(indexPath);
  if (typeof loaded.main !== 'function') {
    throw new Error(`${indexPath} does not export main(event, context)`);
  }
  process.send({ type: 'ready', ok: true, node: process.versions.node });
} catch (e) {
  const err = e instanceof Error ? e : new Error(String(e));
  process.send({ type: 'ready', ok: false, error: { message: err.message, stack: err.stack || '' } });
}

/** The platform answers with JSON: Dates become strings, functions and undefined vanish. */
function asJson(value) {
  if (value === undefined) return null;
  return JSON.parse(JSON.stringify(value));
}

/**
 * SCF's Node.js context: the parent's plain fields plus getRemainingTimeInMillis(), counted
 * from the invocation's start (cold-start init excluded) to its timeout.
 */
function scfContext(fields, deadline) {
  return { ...fields, getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()) };
}

process.on('message', async (msg) => {
  for (const [key, value] of Object.entries(msg.env)) {
    if (value === null) delete process.env[key];
    else process.env[key] = value;
  }
  try {
    const result = await loaded.main(msg.event, scfContext(msg.context, msg.deadline));
    process.send({ type: 'result', id: msg.id, ok: true, result: asJson(result) });
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    process.send({
      type: 'result',
      id: msg.id,
      ok: false,
      error: { name: err.name, message: err.message, stack: err.stack || '' },
    });
  }
});
