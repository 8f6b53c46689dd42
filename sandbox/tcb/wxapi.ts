/**
 * The TCB admin API's WeChat actions (`wx.openApi`, and any other `wx.*` action a handler is
 * registered for). Unlike the database actions, @cloudbase/node-sdk posts these as
 * multipart/form-data (form-data package): text fields `action`, `apiName`, `envName`, … and
 * the protobuf `requestData` as an application/octet-stream part with no filename.
 *
 * The answer is raw bytes; the node-sdk reads it as JSON only when the content-type is exactly
 * `application/json; charset=utf-8` (a TCB error), and hands anything else to the SDK as a
 * buffer (utils/tcbapirequester.ts handleWxOpenApiData).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import busboy from 'busboy';

/** Every part of the form, as the bytes that were sent. */
export type WxApiForm = Map<string, Buffer>;

export interface WxApiAnswer {
  /** Raw protobuf (or whatever the action answers). */
  body: Buffer;
  contentType?: string;
}

export type WxApiHandler = (form: WxApiForm) => Promise<WxApiAnswer> | WxApiAnswer;

const FORM_LIMIT_BYTES = 6 * 1024 * 1024;

export function isMultipart(req: IncomingMessage): boolean {
  return /^multipart\/form-data\b/i.test(req.headers['content-type'] ?? '');
}

export function readWxApiForm(req: IncomingMessage): Promise<WxApiForm> {
  return new Promise((resolve, reject) => {
    const form: WxApiForm = new Map();
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: req.headers,
        limits: { fileSize: FORM_LIMIT_BYTES, fieldSize: FORM_LIMIT_BYTES },
      });
    } catch (e) {
      reject(e);
      return;
    }
    bb.on('field', (name, value) => form.set(name, Buffer.from(value, 'utf8')));
    // busboy treats application/octet-stream parts as files: their bytes arrive untouched.
    bb.on('file', (name, stream) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () => reject(new Error(`form part ${name} is too large`)));
      stream.on('end', () => form.set(name, Buffer.concat(chunks)));
    });
    bb.on('error', reject);
    bb.on('close', () => resolve(form));
    req.pipe(bb);
  });
}

function sendTcbError(res: ServerResponse, code: string, message: string): void {
  const text = JSON.stringify({ code, message, requestId: `local-${Date.now().toString(36)}` });
  res.writeHead(200, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Answers one multipart admin request by its `action`; never throws. */
export async function handleWxApi(
  req: IncomingMessage,
  res: ServerResponse,
  handlers: Record<string, WxApiHandler>,
): Promise<void> {
  let form: WxApiForm;
  try {
    form = await readWxApiForm(req);
  } catch (e) {
    return sendTcbError(res, 'INVALID_PARAM', `[InvalidParameter] ${(e as Error).message}`);
  }
  const action = form.get('action')?.toString('utf8') ?? '';
  const handler = handlers[action];
  if (!handler) {
    return sendTcbError(
      res,
      'INVALID_ACTION',
      `[InvalidAction] the local emulator does not implement ${action}`,
    );
  }
  try {
    const answer = await handler(form);
    res.writeHead(200, {
      'content-type': answer.contentType ?? 'application/octet-stream',
      'content-length': answer.body.length,
    });
    res.end(answer.body);
  } catch (e) {
    sendTcbError(res, 'SYS_ERR', `[InternalError] tcb emulator: ${(e as Error).stack ?? e}`);
  }
}
