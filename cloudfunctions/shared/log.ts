/**
 * One JSON line per decision, searchable in CloudBase's log console by any field
 * (orderId, refundId, transition, errCode). Values pass through `redact` so a secret that
 * slipped into an error message never reaches the log.
 */
export type LogFields = Record<string, unknown>;

const secrets = new Set<string>();

/** Registers values that must never be printed (API key, certificate material). */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 8) secrets.add(value);
}

export function redact(text: string): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('[REDACTED]');
  return out;
}

export type LogSink = (line: string) => void;
let sink: LogSink = (line) => console.log(line);

export function setLogSink(next: LogSink): LogSink {
  const prev = sink;
  sink = next;
  return prev;
}

export function log(level: 'info' | 'warn' | 'error', event: string, fields: LogFields = {}): void {
  const line = JSON.stringify({ level, event, ...fields, ts: new Date().toISOString() }, (_k, v) =>
    v instanceof Error ? { name: v.name, message: v.message, code: (v as { code?: unknown }).code } : v,
  );
  sink(redact(line));
}
