/**
 * Prepares the second pass of a complete mutation run (TESTING.md, "A complete run in two
 * passes"). The first pass, `--ignoreStatic --incremental`, runs every mutant a test reaches
 * against the tests that reach it, and leaves out the static ones (reached only while a module
 * loads or a suite starts), each of which would run the whole suite. The second pass, the same
 * command without `--ignoreStatic`, reuses every result and runs the static mutants against
 * the whole suite.
 *
 * A "hybrid" (reached while loading and by a test) that survived the first pass ran only
 * against the tests that reach it after a reload; this drops it from the incremental report so
 * that the second pass runs it against the whole suite too.
 *
 *   npx tsx scripts/mutation-static-pass.ts reports/inc.json
 */
import { readFileSync, writeFileSync } from 'node:fs';

interface Mutant {
  status: string;
  static?: boolean;
}
interface Report {
  files: Record<string, { mutants: Mutant[] }>;
}

const path = process.argv[2];
if (!path) {
  console.error('usage: npx tsx scripts/mutation-static-pass.ts <incremental report>');
  process.exit(2);
}
const report = JSON.parse(readFileSync(path, 'utf8')) as Report;
let dropped = 0;
let staticLeft = 0;
for (const file of Object.values(report.files)) {
  const keep = file.mutants.filter(
    (m) => !(m.static === true && m.status !== 'Killed' && m.status !== 'Timeout'),
  );
  dropped += file.mutants.length - keep.length;
  staticLeft += file.mutants.filter((m) => m.status === 'Ignored' && m.static === true).length;
  file.mutants = keep;
}
writeFileSync(path, JSON.stringify(report));
console.log(
  `${path}: ${dropped} static mutants not killed will run against the whole suite (${staticLeft} of them ignored by the first pass)`,
);
