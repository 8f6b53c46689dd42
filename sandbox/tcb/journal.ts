/**
 * Crash-safe persistence for the emulator: a snapshot file plus an append-only journal.
 *
 * - Every committed change (one plain write, one multi-document update, one transaction
 *   commit) is ONE journal line `<crc32> <canonical EJSON>\n`, so recovery applies a change
 *   entirely or not at all. A line cut short by a crash fails its checksum and, being the
 *   last line, is dropped: each document comes back either old or new, never half-written.
 * - Lines are group-committed (one write + fdatasync per batch) and the request that caused
 *   them is answered only after the sync, so an acknowledged write survives a crash.
 * - Compaction writes the whole state to snapshot.json.tmp, fsyncs, renames it over
 *   snapshot.json (atomic on POSIX) and only then truncates the journal. Each line carries a
 *   sequence number and the snapshot records the last one it contains, so a crash between the
 *   rename and the truncate replays nothing twice.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { type FileHandle, open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { EJSON } from 'bson';
import type { Doc } from './ejson';

export interface JournalWrite {
  c: string;
  id: unknown;
  /** The whole new document, or null when it was removed. */
  doc: Doc | null;
}

export interface JournalEntry {
  seq: number;
  /** Collections created by this change. */
  create?: string[];
  writes?: JournalWrite[];
}

export interface SnapshotState {
  seq: number;
  collections: Record<string, Doc[]>;
}

export interface Recovered {
  snapshot: SnapshotState | null;
  entries: JournalEntry[];
  /** True when a torn final line (a crash mid-append) was discarded. */
  droppedTornTail: boolean;
}

const SNAPSHOT = 'snapshot.json';
const JOURNAL = 'journal.log';

function encodeLine(entry: JournalEntry): Buffer {
  const body = EJSON.stringify(entry as unknown as Doc, { relaxed: false });
  return Buffer.from(`${crc32(body).toString(16).padStart(8, '0')} ${body}\n`, 'utf8');
}

function decodeLine(line: string): JournalEntry | null {
  const space = line.indexOf(' ');
  if (space !== 8) return null;
  const body = line.slice(9);
  if (crc32(body).toString(16).padStart(8, '0') !== line.slice(0, 8)) return null;
  try {
    return EJSON.parse(body, { relaxed: true }) as JournalEntry;
  } catch {
    return null;
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function recover(dir: string): Recovered {
  mkdirSync(dir, { recursive: true });
  // A leftover .tmp is a compaction that crashed before its rename: the old snapshot is valid.
  rmSync(join(dir, `${SNAPSHOT}.tmp`), { force: true });
  let snapshot: SnapshotState | null = null;
  if (existsSync(join(dir, SNAPSHOT))) {
    snapshot = EJSON.parse(readFileSync(join(dir, SNAPSHOT), 'utf8'), { relaxed: true }) as SnapshotState;
  }
  const entries: JournalEntry[] = [];
  let droppedTornTail = false;
  if (existsSync(join(dir, JOURNAL))) {
    const lines = readFileSync(join(dir, JOURNAL), 'utf8').split('\n');
    // The text after the last '\n' is either '' or an append the crash interrupted.
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line === '') continue;
      const entry = decodeLine(line);
      if (entry) {
        entries.push(entry);
        continue;
      }
      const isLast = lines.slice(i + 1).every((l) => l === '');
      if (!isLast) {
        throw new Error(
          `tcb emulator: ${join(dir, JOURNAL)} line ${i + 1} is corrupt in the middle of the journal; refusing to guess. Move the data folder away to start fresh.`,
        );
      }
      droppedTornTail = true;
    }
  }
  return { snapshot, entries, droppedTornTail };
}

export class Journal {
  private fh: FileHandle | null = null;
  private queue: Buffer[] = [];
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private flushing: Promise<void> | null = null;
  private bytes = 0;

  private constructor(
    private readonly dir: string,
    private readonly serialize: () => SnapshotState,
    private readonly compactBytes: number,
  ) {}

  /** Opens the journal after recovery and compacts straight away, dropping any torn tail. */
  static async open(dir: string, serialize: () => SnapshotState, compactBytes: number): Promise<Journal> {
    const j = new Journal(dir, serialize, compactBytes);
    j.fh = await open(join(dir, JOURNAL), 'a');
    await j.compact();
    return j;
  }

  /** Resolves once the entry is on disk (fdatasync done). */
  append(entry: JournalEntry): Promise<void> {
    this.queue.push(encodeLine(entry));
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.flushing) this.flushing = this.flushLoop();
    return done;
  }

  private async flushLoop(): Promise<void> {
    // Let every write made in this tick join the batch.
    await new Promise((r) => setImmediate(r));
    while (this.queue.length > 0) {
      const batch = Buffer.concat(this.queue);
      const waiters = this.waiters;
      this.queue = [];
      this.waiters = [];
      try {
        await this.fh!.write(batch);
        await this.fh!.datasync();
        this.bytes += batch.length;
        if (this.bytes > this.compactBytes) await this.compact();
        for (const w of waiters) w.resolve();
      } catch (e) {
        for (const w of waiters) w.reject(e);
      }
    }
    this.flushing = null;
  }

  /** Snapshot via write-temp + fsync + rename, then empty the journal. */
  async compact(): Promise<void> {
    const state = this.serialize();
    const tmp = join(this.dir, `${SNAPSHOT}.tmp`);
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(EJSON.stringify(state as unknown as Doc, { relaxed: false }), 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.dir, SNAPSHOT));
    fsyncDir(this.dir);
    await this.fh!.truncate(0);
    await this.fh!.sync();
    this.bytes = 0;
  }

  async close(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (!this.fh) return;
    await this.compact();
    await this.fh.close();
    this.fh = null;
  }

  /** For crash tests: stop without compacting, exactly as a killed process would leave it. */
  async abandon(): Promise<void> {
    while (this.flushing) await this.flushing;
    await this.fh?.close();
    this.fh = null;
  }
}
