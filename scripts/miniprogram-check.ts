/**
 * Compiles the mini-program with WeChat's own toolchain (miniprogram-ci, the compiler behind
 * DevTools' upload), offline, and runs its code-quality checks (代码质量). Exits 0 when the
 * whole package compiles, every `require` in it resolves inside the package (a value import
 * from outside miniprogram/ compiles into a require of a file that is never uploaded), and
 * every quality check passes.
 *
 *   npm run miniprogram:check [-- --json] [-- --project <folder with project.config.json>]
 *
 * Offline, by two public doors of miniprogram-ci: its HTTP proxy setting (`ci.proxy`) points
 * at a closed local port, so the one request it makes on its own (the upload's file-type
 * list, with a built-in fallback) fails at once; and the project's `attr()` (part of the
 * IProject interface every ci call takes) answers the package's own DefaultProjectAttr
 * instead of asking WeChat for the appid's limits with an upload key.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import * as ci from 'miniprogram-ci';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..');

export interface MiniprogramCheck {
  ok: boolean;
  /** The compile failed: the compiler's message. */
  error?: string;
  /** Every file of the package as it would be uploaded. */
  files: string[];
  /** `file → target` for each require that names no file of the package. */
  missingRequires: string[];
  quality: { name: string; success: boolean; text: string }[];
  ms: number;
}

/** Requires in compiled JS whose target is not in the package. */
export function missingRequires(files: Record<string, string | Buffer>): string[] {
  const names = new Set(Object.keys(files));
  const missing: string[] = [];
  for (const [file, content] of Object.entries(files)) {
    if (!file.endsWith('.js')) continue;
    for (const [, target] of String(content).matchAll(/\brequire\(\s*["']([^"']+)["']\s*\)/g)) {
      const path = target!.startsWith('.')
        ? posix.normalize(posix.join(posix.dirname(file), target!))
        : target!;
      if (!names.has(path) && !names.has(`${path}.js`)) missing.push(`${file} → ${target}`);
    }
  }
  return missing;
}

export async function checkMiniprogram(projectDir = ROOT): Promise<MiniprogramCheck> {
  const started = Date.now();
  // Exactly what DevTools opens: the project file and the mini-program root, nothing else of
  // the repository (so nothing outside can be picked up by accident).
  const sourceDir = resolve(projectDir);
  const work = mkdtempSync(join(tmpdir(), 'miniprogram-ci-'));
  // miniprogram-ci makes empty cache folders named by a hash in the working directory (and
  // its compiler processes inherit it): run it from the throw-away copy, not the repository.
  const cwd = process.cwd();
  process.chdir(work);
  try {
    cpSync(join(sourceDir, 'project.config.json'), join(work, 'project.config.json'));
    cpSync(join(sourceDir, 'miniprogram'), join(work, 'miniprogram'), { recursive: true });
    ci.proxy('http://127.0.0.1:9');
    const project = new ci.Project({
      appid: 'touristappid',
      type: 'miniProgram',
      projectPath: work,
      // No upload happens: the key is never read by compile or the quality checks.
      privateKey: 'offline',
    });
    Object.assign(project, { attr: async () => ci.DefaultProjectAttr });
    let files: Record<string, string | Buffer>;
    try {
      files = await ci.getCompiledResult({ project, version: '0.0.0', setting: { useProjectConfig: true } });
    } catch (e) {
      return {
        ok: false,
        error: (e as Error)?.message ?? String(e),
        files: [],
        missingRequires: [],
        quality: [],
        ms: Date.now() - started,
      };
    }
    const missing = missingRequires(files);
    const quality = (await ci.checkCodeQuality(project)).map((q) => ({
      name: String(q.name),
      success: q.success === true,
      text: q.text ?? '',
    }));
    return {
      ok: missing.length === 0 && quality.every((q) => q.success),
      files: Object.keys(files).sort(),
      missingRequires: missing,
      quality,
      ms: Date.now() - started,
    };
  } finally {
    process.chdir(cwd);
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--project');
  const projectDir = at >= 0 && args[at + 1] ? resolve(args[at + 1]!) : ROOT;
  void checkMiniprogram(projectDir).then((report) => {
    if (args.includes('--json')) process.stdout.write(`${JSON.stringify(report)}\n`);
    else {
      console.log(report.error ? `compile failed: ${report.error}` : `compiled ${report.files.length} files`);
      for (const m of report.missingRequires) console.log(`require outside the package: ${m}`);
      for (const q of report.quality) console.log(`${q.success ? 'ok  ' : 'FAIL'} ${q.name}: ${q.text}`);
      console.log(report.ok ? 'mini-program check passed' : 'mini-program check FAILED');
    }
    // miniprogram-ci leaves a file watcher behind: leave explicitly.
    process.exit(report.ok ? 0 : 1);
  });
}
