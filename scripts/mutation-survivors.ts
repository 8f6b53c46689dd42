/**
 * Lists the mutants a mutation run left alive, while it runs or after it: Stryker writes
 * mutation.json only at the end, but its event recorder (stryker.config.mjs) writes each
 * mutant's result as soon as it is known, so an unfinished run still names its survivors.
 *
 *   npx tsx scripts/mutation-survivors.ts            # reports/mutation/events
 *   npx tsx scripts/mutation-survivors.ts <dir> Survived,NoCoverage,Timeout
 */
import { readdirSync, readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface Result {
  fileName: string;
  status: string;
  mutatorName: string;
  replacement?: string;
  location: { start: { line: number; column: number } };
}

const dir = process.argv[2] ?? 'reports/mutation/events';
const wanted = new Set((process.argv[3] ?? 'Survived,NoCoverage').split(','));
const counts = new Map<string, Record<string, number>>();
const sources = new Map<string, string[]>();

for (const name of readdirSync(dir).sort()) {
  if (!name.endsWith('-onMutantTested.json')) continue;
  const m = JSON.parse(readFileSync(`${dir}/${name}`, 'utf8')) as Result;
  // The event names the file inside Stryker's sandbox; the source is read from the work tree.
  const file = relative(process.cwd(), m.fileName).replace(/^\.stryker-tmp[^/]*\/sandbox-[^/]+\//, '');
  const c = counts.get(file) ?? {};
  c[m.status] = (c[m.status] ?? 0) + 1;
  counts.set(file, c);
  if (!wanted.has(m.status)) continue;
  if (!sources.has(file)) sources.set(file, readFileSync(file, 'utf8').split('\n'));
  const { line, column } = m.location.start;
  const code = (sources.get(file)?.[line - 1] ?? '').trim().slice(0, 100);
  console.log(
    `${file}:${line}:${column} ${m.status} ${m.mutatorName} => ${JSON.stringify(m.replacement)} | ${code}`,
  );
}
for (const [file, c] of counts) {
  const detected = (c['Killed'] ?? 0) + (c['Timeout'] ?? 0);
  const undetected = (c['Survived'] ?? 0) + (c['NoCoverage'] ?? 0);
  const score =
    detected + undetected === 0 ? 'n/a' : `${((100 * detected) / (detected + undetected)).toFixed(2)} %`;
  console.log(`${file} ${JSON.stringify(c)} score ${score}`);
}
