/**
 * The fault registry over HTTP, for the console, scripts and tests in another process:
 *
 *   GET    /_emulator/faults                  { rules, held }
 *   POST   /_emulator/faults                  a rule: { action, match?, times?, error?, how? } → 201 the rule
 *   DELETE /_emulator/faults                  removes every rule (held requests proceed)
 *   GET    /_emulator/faults/<id>             the rule and its hits
 *   DELETE /_emulator/faults/<id>             removes it (what it holds proceeds)
 *   POST   /_emulator/faults/<id>/wait        { hit?: n (0 = first), timeoutMs? } → the hit once it
 *                                             arrived (long poll), 408 if it did not in time
 *   POST   /_emulator/faults/<id>/release     { action?: proceed|fail|drop|loseAnswer, error?, how? }
 *                                             → { released: n } for everything the rule holds
 *   POST   /_emulator/faults/<id>/hits/<n>/release   the same for one hit (n from 1)
 *
 * Bodies and answers are JSON; a bad body answers 400 { code: 'INVALID_FAULT', message }.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkEffect, checkSpec, type DbFaultEffect, type DbFaults, type FaultRule } from './faults';

const BODY_LIMIT = 64 * 1024;
const MAX_WAIT_MS = 120_000;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function invalid(res: ServerResponse, message: string): void {
  send(res, 400, { code: 'INVALID_FAULT', message });
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > BODY_LIMIT) throw new Error('body too large');
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  return text === '' ? {} : JSON.parse(text);
}

function ruleView(rule: FaultRule, withHits = false) {
  const view = JSON.parse(JSON.stringify(rule)) as Record<string, unknown>;
  if (withHits) view['hits'] = rule.hits.map((h) => JSON.parse(JSON.stringify(h)));
  return view;
}

/** Answers a /_emulator/faults request; resolves false when the path is not one of these routes. */
export async function handleFaultRoute(
  faults: DbFaults,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): Promise<boolean> {
  const m = /^\/_emulator\/faults(?:\/([^/]+)(?:\/(wait|release|hits\/(\d+)\/release))?)?\/?$/.exec(path);
  if (!m) return false;
  const [, id, verb, hitNo] = m;
  const method = req.method ?? 'GET';
  let body: unknown = {};
  if (method === 'POST') {
    try {
      body = await readJson(req);
    } catch (e) {
      invalid(res, `body must be JSON: ${(e as Error).message}`);
      return true;
    }
  }
  if (!id) {
    if (method === 'GET') {
      send(res, 200, {
        rules: faults.list().map((r) => ruleView(r)),
        held: faults.held().map((h) => JSON.parse(JSON.stringify(h))),
      });
    } else if (method === 'POST') {
      try {
        send(res, 201, ruleView(faults.add(checkSpec(body))));
      } catch (e) {
        invalid(res, (e as Error).message);
      }
    } else if (method === 'DELETE') {
      const n = faults.list().length;
      faults.clear();
      send(res, 200, { removed: n });
    } else send(res, 405, { code: 'METHOD_NOT_ALLOWED', message: `${method} ${path}` });
    return true;
  }
  const rule = faults.rule(decodeURIComponent(id));
  if (!rule) {
    send(res, 404, { code: 'NOT_FOUND', message: `no fault rule ${id}` });
    return true;
  }
  if (!verb) {
    if (method === 'GET') send(res, 200, ruleView(rule, true));
    else if (method === 'DELETE') {
      rule.remove();
      send(res, 200, { removed: 1 });
    } else send(res, 405, { code: 'METHOD_NOT_ALLOWED', message: `${method} ${path}` });
    return true;
  }
  if (method !== 'POST') {
    send(res, 405, { code: 'METHOD_NOT_ALLOWED', message: `${method} ${path}` });
    return true;
  }
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (verb === 'wait') {
    const n = b['hit'] ?? 0;
    const timeoutMs = b['timeoutMs'] ?? 10_000;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) return invalidTrue(res, 'hit must be ≥ 0');
    if (typeof timeoutMs !== 'number' || timeoutMs < 0 || timeoutMs > MAX_WAIT_MS) {
      return invalidTrue(res, `timeoutMs must be from 0 to ${MAX_WAIT_MS}`);
    }
    try {
      const hit = await rule.hit(n, timeoutMs);
      send(res, 200, JSON.parse(JSON.stringify(hit)));
    } catch (e) {
      send(res, 408, { code: 'TIMEOUT', message: (e as Error).message });
    }
    return true;
  }
  let effect: DbFaultEffect;
  try {
    effect = checkEffect(b, false) as DbFaultEffect;
  } catch (e) {
    return invalidTrue(res, (e as Error).message);
  }
  if (hitNo !== undefined) {
    const hit = rule.hits[Number(hitNo) - 1];
    if (!hit) {
      send(res, 404, { code: 'NOT_FOUND', message: `rule ${id} has no hit ${hitNo}` });
      return true;
    }
    send(res, 200, { released: hit.release(effect) ? 1 : 0 });
    return true;
  }
  send(res, 200, { released: rule.release(effect) });
  return true;
}

function invalidTrue(res: ServerResponse, message: string): true {
  invalid(res, message);
  return true;
}
