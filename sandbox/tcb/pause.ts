/**
 * Pause points for race tests: the emulator holds the first database request that matches
 * until the test releases it, so a test can run another function in between and make an
 * interleaving happen instead of hoping for it. Functions run in their own processes; the
 * request simply waits for its answer, as it would behind a slow database.
 */
import { parseEjson } from './ejson';

/** A database request as the emulator received it, its query and data decoded. */
export interface PausedRequest {
  action: string;
  collection: string;
  query: unknown;
  data: unknown;
}

export interface Pause {
  /** Resolves when a matching request arrived and is being held. */
  reached: Promise<PausedRequest>;
  /** Lets the held request (or the next matching one, if none came yet) through. */
  release(): void;
}

interface Point {
  match: (r: PausedRequest) => boolean;
  taken: boolean;
  reached: (r: PausedRequest) => void;
  released: Promise<void>;
}

function decode(value: unknown): unknown {
  if (typeof value !== 'string' || value === '') return value;
  try {
    return parseEjson(value, 'paused request');
  } catch {
    return value;
  }
}

export class PausePoints {
  private readonly points: Point[] = [];

  add(match: (r: PausedRequest) => boolean): Pause {
    let reached!: (r: PausedRequest) => void;
    let release!: () => void;
    const point: Point = {
      match,
      taken: false,
      reached: (r) => reached(r),
      released: new Promise<void>((r) => {
        release = r;
      }),
    };
    const hit = new Promise<PausedRequest>((r) => {
      reached = r;
    });
    this.points.push(point);
    return {
      reached: hit,
      release: () => {
        release();
        const at = this.points.indexOf(point);
        if (at >= 0 && !point.taken) this.points.splice(at, 1);
      },
    };
  }

  /** Holds `body` if a pause point wants it; each point holds one request. */
  async gate(body: { action?: unknown; collectionName?: unknown; query?: unknown; data?: unknown }) {
    if (this.points.length === 0 || typeof body.action !== 'string') return;
    const request: PausedRequest = {
      action: body.action,
      collection: typeof body.collectionName === 'string' ? body.collectionName : '',
      query: decode(body.query),
      data: decode(body.data),
    };
    const point = this.points.find((p) => !p.taken && p.match(request));
    if (!point) return;
    point.taken = true;
    this.points.splice(this.points.indexOf(point), 1);
    point.reached(request);
    await point.released;
  }
}
