/**
 * Cloud calls (云调用) need a declaration: a function calls `cloud.openapi.<ns>.<api>` only if
 * its config.json lists `"<ns>.<api>"` under `permissions.openapi`; otherwise the platform
 * answers -604101 "function has no permission to call this API" at run time, typically
 * only when the first notice is due. The build finds the calls in each bundle and refuses a
 * function that makes one it does not declare.
 *
 * The calls are found by their property chain, which minification keeps as written
 * (`e.openapi.subscribeMessage.send(`), so code that sends must spell the chain out
 * (cloudfunctions/shared/runtime/subscribe.ts does).
 */
import type { FunctionConfig } from './build';

const OPENAPI_CALL = /\.openapi\s*\.\s*([A-Za-z_$][\w$]*)\s*\.\s*([A-Za-z_$][\w$]*)\s*\(/g;
const PERMISSION = /^[A-Za-z][\w]*\.[A-Za-z][\w]*$/;

/** The cloud calls a bundle makes, e.g. ["subscribeMessage.send"]. */
export function openapiCalls(bundle: string): string[] {
  return [...new Set([...bundle.matchAll(OPENAPI_CALL)].map((m) => `${m[1]}.${m[2]}`))].sort();
}

/** Problems with `fn`'s openapi permissions, given its built bundle; empty when fine. */
export function openapiPermissionProblems(fn: string, bundle: string, config: FunctionConfig): string[] {
  const problems: string[] = [];
  const declared = config.permissions?.openapi;
  if (declared !== undefined && (!Array.isArray(declared) || !declared.every((p) => typeof p === 'string'))) {
    return [
      `${fn}/config.json: permissions.openapi must be a list of API names such as "subscribeMessage.send"`,
    ];
  }
  for (const p of declared ?? []) {
    if (!PERMISSION.test(p))
      problems.push(`${fn}/config.json: "${p}" in permissions.openapi is not an API name`);
  }
  const missing = openapiCalls(bundle).filter((call) => !(declared ?? []).includes(call));
  if (missing.length > 0) {
    const list = missing.map((m) => JSON.stringify(m)).join(', ');
    problems.push(
      `${fn} calls cloud.openapi ${missing.join(', ')} but its config.json does not declare it: add "permissions": { "openapi": [${list}] } (the platform refuses undeclared cloud calls with -604101)`,
    );
  }
  return problems;
}
