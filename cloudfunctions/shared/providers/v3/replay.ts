/**
 * Remembers the (timestamp, nonce) pairs of verified messages for as long as their timestamp
 * is acceptable, so a captured answer or notify cannot be played back within the 5-minute
 * window. Per instance and bounded: a replay that reaches another instance is still stopped
 * by the compare-and-set on the order or refund, which makes a second copy change nothing.
 */
const WINDOW_MS = 300_000;

export class ReplayGuard {
  private readonly seen = new Map<string, number>();

  constructor(private readonly maxEntries = 10_000) {}

  /** False when `key` was already remembered; otherwise remembers it until `timestampMs` + 5 min. */
  remember(key: string, timestampMs: number, nowMs: number): boolean {
    if (this.seen.size > 256) this.sweep(nowMs);
    const until = this.seen.get(key);
    if (until !== undefined && until > nowMs) return false;
    if (this.seen.size >= this.maxEntries) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    this.seen.set(key, timestampMs + WINDOW_MS);
    return true;
  }

  private sweep(nowMs: number): void {
    for (const [k, until] of this.seen) {
      if (until > nowMs) continue;
      this.seen.delete(k);
    }
  }
}
