/**
 * Checks a Tencent Cloud API 3.0 request signature (TC3-HMAC-SHA256) the way the server does,
 * from the documented algorithm (cloud.tencent.com/document/api/213/30654), not from any
 * client's code: canonical request, string to sign, the date/service/tc3_request key chain.
 * Errors carry the API's own codes (AuthFailure.*), so a client sees what Tencent Cloud says.
 */
import { createHash, createHmac } from 'node:crypto';

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface SignedRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

export interface VerifiedRequest {
  secretId: string;
  service: string;
  action: string;
  version: string;
  region: string;
  timestamp: number;
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');
const hmac = (key: Buffer | string, s: string) => createHmac('sha256', key).update(s, 'utf8').digest();

/** Lower-cased header names; a duplicate spelled differently is a client bug, keep the first. */
function lowerHeaders(h: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    const key = k.toLowerCase();
    if (!(key in out)) out[key] = String(v);
  }
  return out;
}

/** The date part of the credential scope: the UTC day of the timestamp. */
export function utcDate(timestamp: number): string {
  return new Date(timestamp * 1000).toISOString().slice(0, 10);
}

export function verifyTc3(
  req: SignedRequest,
  secrets: ReadonlyMap<string, string>,
  opts: { nowSeconds: number; maxSkewSeconds?: number },
): VerifiedRequest {
  const headers = lowerHeaders(req.headers);
  const url = new URL(req.url);
  const service = url.hostname.split('.')[0] ?? '';
  const action = headers['x-tc-action'];
  const version = headers['x-tc-version'];
  const region = headers['x-tc-region'] ?? '';
  if (!action) throw new ApiError('MissingParameter', 'The request is missing the X-TC-Action header.');
  if (!version) throw new ApiError('MissingParameter', 'The request is missing the X-TC-Version header.');

  const auth = headers['authorization'] ?? '';
  const m =
    /^TC3-HMAC-SHA256 Credential=([^/]+)\/(\d{4}-\d{2}-\d{2})\/([a-z0-9]+)\/tc3_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/.exec(
      auth,
    );
  if (!m) throw new ApiError('AuthFailure.InvalidAuthorization', 'Authorization header is malformed.');
  const [, secretId, date, scopeService, signedHeaderList, signature] = m as unknown as string[];

  const timestamp = Number(headers['x-tc-timestamp']);
  if (!Number.isInteger(timestamp)) {
    throw new ApiError('AuthFailure.InvalidAuthorization', 'X-TC-Timestamp is missing or not an integer.');
  }
  const skew = Math.abs(opts.nowSeconds - timestamp);
  if (skew > (opts.maxSkewSeconds ?? 300)) {
    throw new ApiError(
      'AuthFailure.SignatureExpire',
      `Signature expired: the timestamp is ${skew} s away from server time (at most 300 s).`,
    );
  }
  if (date !== utcDate(timestamp)) {
    throw new ApiError(
      'AuthFailure.InvalidAuthorization',
      'The credential date is not the UTC date of X-TC-Timestamp.',
    );
  }
  if (scopeService !== service) {
    throw new ApiError(
      'AuthFailure.InvalidAuthorization',
      `The credential service ${scopeService} is not ${service}.`,
    );
  }
  const secretKey = secrets.get(secretId!);
  if (secretKey === undefined) {
    throw new ApiError('AuthFailure.SecretIdNotFound', 'The SecretId is not found, please ensure it exists.');
  }

  const signedHeaders = signedHeaderList!.split(';');
  if (!signedHeaders.includes('content-type') || !signedHeaders.includes('host')) {
    throw new ApiError(
      'AuthFailure.InvalidAuthorization',
      'SignedHeaders must include content-type and host.',
    );
  }
  if ((headers['host'] ?? url.host).split(':')[0] !== url.hostname) {
    throw new ApiError('AuthFailure.InvalidAuthorization', 'The Host header does not match the endpoint.');
  }
  const canonicalHeaders = signedHeaders
    .map((h) => `${h}:${(h === 'host' ? url.hostname : (headers[h] ?? '')).trim().toLowerCase()}\n`)
    .join('');
  const canonicalRequest = [
    req.method.toUpperCase(),
    url.pathname || '/',
    url.search.slice(1),
    canonicalHeaders,
    signedHeaderList,
    sha256(req.method.toUpperCase() === 'GET' ? '' : req.body),
  ].join('\n');
  const stringToSign = [
    'TC3-HMAC-SHA256',
    String(timestamp),
    `${date}/${service}/tc3_request`,
    sha256(canonicalRequest),
  ].join('\n');
  const kDate = hmac(`TC3${secretKey}`, date!);
  const kService = hmac(kDate, service);
  const kSigning = hmac(kService, 'tc3_request');
  const expected = createHmac('sha256', kSigning).update(stringToSign, 'utf8').digest('hex');
  if (expected !== signature) {
    throw new ApiError(
      'AuthFailure.SignatureFailure',
      'The provided credentials could not be validated. Please check your signature is correct.',
    );
  }
  return { secretId: secretId!, service, action, version, region, timestamp };
}
