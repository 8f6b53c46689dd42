/**
 * One score table from the reports of several mutation runs. Stryker writes one
 * mutation.json per run; a run scoped to a few files (`--mutate`) is how a large area is
 * measured on two cores, so the area's figure is the sum of the last run of each file.
 *
 *   npx tsx scripts/mutation-summary.ts reports/a/mutation.json reports/b/mutation.json
 *
 * A file named by more than one report is counted from the last report given. Score is
 * (killed + timed out) ÷ (killed + timed out + survived + no coverage), as Stryker's own.
 * Ignored mutants are split into marked equivalents and static mutants left out by
 * `--ignoreStatic`, which a complete measurement must not have.
 */
import { readFileSync } from 'node:fs';

interface Mutant {
  status: string;
  statusReason?: string;
}
interface Report {
  files: Record<string, { mutants: Mutant[] }>;
}

const COLUMNS = ['killed', 'timeout', 'survived', 'noCoverage', 'marked', 'static', 'other'] as const;
type Counts = Record<(typeof COLUMNS)[number], number>;

function column(m: Mutant): (typeof COLUMNS)[number] {
  switch (m.status) {
    case 'Killed':
      return 'killed';
    case 'Timeout':
      return 'timeout';
    case 'Survived':
      return 'survived';
    case 'NoCoverage':
      return 'noCoverage';
    case 'Ignored':
      return /^Static mutant/.test(m.statusReason ?? '') ? 'static' : 'marked';
    default:
      // CompileError, RuntimeError, Pending: not in the score, but shown so none hides.
      return 'other';
  }
}

export function summarize(reports: Report[]): Map<string, Counts> {
  const byFile = new Map<string, Counts>();
  for (const report of reports) {
    for (const [file, { mutants }] of Object.entries(report.files)) {
      const c = Object.fromEntries(COLUMNS.map((k) => [k, 0])) as Counts;
      for (const m of mutants) c[column(m)]++;
      byFile.set(file, c);
    }
  }
  return byFile;
}

export function score(c: Counts): number | undefined {
  const detected = c.killed + c.timeout;
  const counted = detected + c.survived + c.noCoverage;
  return counted === 0 ? undefined : (100 * detected) / counted;
}

function row(name: string, c: Counts): string {
  const s = score(c);
  return `| ${name} | ${COLUMNS.map((k) => c[k]).join(' | ')} | ${s === undefined ? 'n/a' : `${s.toFixed(2)} %`} |`;
}

if (process.argv[1]?.endsWith('mutation-summary.ts')) {
  const paths = process.argv.slice(2);
  if (paths.length === 0) {
    console.error('usage: npx tsx scripts/mutation-summary.ts <mutation.json>...');
    process.exit(2);
  }
  const byFile = summarize(paths.map((p) => JSON.parse(readFileSync(p, 'utf8')) as Report));
  const total = Object.fromEntries(COLUMNS.map((k) => [k, 0])) as Counts;
  console.log(`| file | ${COLUMNS.join(' | ')} | score |`);
  console.log(`| --- | ${COLUMNS.map(() => '---:').join(' | ')} | ---: |`);
  for (const [file, c] of [...byFile].sort(([a], [b]) => a.localeCompare(b))) {
    for (const k of COLUMNS) total[k] += c[k];
    console.log(row(`\`${file.replace(/^cloudfunctions\/shared\//, '')}\``, c));
  }
  console.log(row('**all**', total));
}
