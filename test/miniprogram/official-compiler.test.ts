/**
 * The mini-program through WeChat's own compiler (miniprogram-ci, what DevTools' upload runs),
 * offline: it compiles with no error, every require lands inside the uploaded package, and
 * its code-quality checks (代码质量: package size, JS/WXML/WXSS minification, lazy code
 * loading, unused files) all pass. The check runs as its own process, as `npm run
 * miniprogram:check` does, with every connection off this machine refused and reported.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { MiniprogramCheck } from '../../scripts/miniprogram-check';

const ROOT = resolve(__dirname, '../..');
const OFFLINE = resolve(__dirname, 'offline.cjs');

function runCheck(projectDir: string): Promise<{ report: MiniprogramCheck; stderr: string }> {
  return new Promise((res, rej) => {
    execFile(
      join(ROOT, 'node_modules/.bin/tsx'),
      [join(ROOT, 'scripts/miniprogram-check.ts'), '--json', '--project', projectDir],
      {
        cwd: ROOT,
        // NODE_OPTIONS reaches the compiler processes miniprogram-ci forks, too.
        env: { ...process.env, NODE_OPTIONS: `--require ${OFFLINE}` },
        timeout: 240_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const line = stdout.split('\n').find((l) => l.startsWith('{'));
        if (!line) return rej(new Error(`no report (${error?.message}): ${stderr.slice(-2000)}`));
        res({ report: JSON.parse(line) as MiniprogramCheck, stderr });
      },
    );
  });
}

const temp: string[] = [];
afterAll(() => {
  for (const dir of temp) rmSync(dir, { recursive: true, force: true });
});

describe('the official compiler (miniprogram-ci)', () => {
  it('compiles the whole mini-program offline, keeps it self-contained and passes every quality check', async () => {
    const { report, stderr } = await runCheck(ROOT);
    expect(stderr).not.toContain('OFFLINE: blocked');
    expect(report.error).toBeUndefined();
    const appJson = JSON.parse(readFileSync(join(ROOT, 'miniprogram/app.json'), 'utf8')) as {
      pages: string[];
    };
    for (const page of appJson.pages) {
      for (const ext of ['js', 'json', 'wxml', 'wxss']) expect(report.files).toContain(`${page}.${ext}`);
    }
    // packOptions keeps the TypeScript config out of the upload; no TypeScript is uploaded.
    expect(report.files).not.toContain('tsconfig.json');
    expect(report.files.filter((f) => f.endsWith('.ts'))).toEqual([]);
    expect(report.missingRequires).toEqual([]);
    expect(report.quality.map((q) => q.name)).toEqual(
      expect.arrayContaining(['WXML_COMPRESS_OPEN', 'WXSS_COMPRESS_OPEN', 'LAZYCODE_LOADING_OPEN']),
    );
    expect(report.quality.filter((q) => !q.success)).toEqual([]);
    expect(report.ok).toBe(true);
  }, 300_000);

  it('catches what the compiler lets through: a value import from outside, and a quality setting turned off', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'miniprogram-broken-'));
    temp.push(dir);
    cpSync(join(ROOT, 'project.config.json'), join(dir, 'project.config.json'));
    cpSync(join(ROOT, 'miniprogram'), join(dir, 'miniprogram'), { recursive: true });
    const errors = join(dir, 'miniprogram/utils/errors.ts');
    writeFileSync(
      errors,
      readFileSync(errors, 'utf8').replace(
        /^import type \{ [^}]* \} from '(.*\/contract)';$/m,
        "$&\nimport { ERROR_CODES } from '$1';\nexport const CODE_COUNT = ERROR_CODES.length;",
      ),
    );
    const app = join(dir, 'miniprogram/app.json');
    const { lazyCodeLoading: _off, ...rest } = JSON.parse(readFileSync(app, 'utf8')) as Record<
      string,
      unknown
    >;
    writeFileSync(app, JSON.stringify(rest));

    const { report } = await runCheck(dir);
    // The official compiler itself says nothing about either.
    expect(report.error).toBeUndefined();
    expect(report.missingRequires).toEqual([
      expect.stringMatching(/^utils\/errors\.js → \.\.\/\.\.\/cloudfunctions\/shared\/contract/),
    ]);
    expect(report.quality.find((q) => q.name === 'LAZYCODE_LOADING_OPEN')?.success).toBe(false);
    expect(report.ok).toBe(false);
  }, 300_000);
});
