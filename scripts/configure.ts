/**
 * `npm run configure [-- --env-file deploy.env]`
 *
 * Points the mini-program at the same shop the deploy configures: the AppID (WXPAY_APPID) goes
 * into project.config.json, the cloud environment (CLOUDBASE_ENV_ID) into the
 * `wx.cloud.init({ env })` call of miniprogram/app.ts. WeChat DevTools reads both when it
 * opens the project, previews it and uploads it. Nothing else in either file changes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromProcessEnv, readEnvFile } from './golive/envfile';

const root = resolve(fileURLToPath(import.meta.url), '../..');

export interface ConfigureResult {
  changed: string[];
  problems: string[];
}

const APPID = /^wx[0-9a-zA-Z]{16}$/;
const ENV_ID = /^[a-z][a-z0-9-]{2,40}$/;
const INIT = /wx\.cloud\.init\(\{[^}]*\}\)/;

/** Writes appid and env into the two files under `dir`; refuses (names what is missing) first. */
export function configureMiniProgram(vars: Record<string, string>, dir: string): ConfigureResult {
  const problems: string[] = [];
  const appid = vars['WXPAY_APPID'];
  const envId = vars['CLOUDBASE_ENV_ID'];
  if (!appid)
    problems.push(
      'WXPAY_APPID is missing: the mini-program AppID (小程序后台 → 开发管理 → 开发设置 → AppID)',
    );
  else if (!APPID.test(appid)) problems.push(`WXPAY_APPID ${appid} is not wx + 16 characters`);
  if (!envId)
    problems.push(
      'CLOUDBASE_ENV_ID is missing: the environment id (WeChat DevTools → 云开发 → 设置 → 环境ID)',
    );
  else if (!ENV_ID.test(envId))
    problems.push(`CLOUDBASE_ENV_ID ${envId} is not an environment id (lower-case letters, digits, -)`);
  const projectPath = resolve(dir, 'project.config.json');
  const appPath = resolve(dir, 'miniprogram/app.ts');
  const project = readFileSync(projectPath, 'utf8');
  const app = readFileSync(appPath, 'utf8');
  if (!/"appid":\s*"[^"]*"/.test(project)) problems.push(`${projectPath} has no "appid" field`);
  if (!INIT.test(app)) problems.push(`${appPath} has no wx.cloud.init({ … }) call`);
  if (problems.length > 0) return { changed: [], problems };

  const changed: string[] = [];
  const newProject = project.replace(/"appid":\s*"[^"]*"/, `"appid": "${appid}"`);
  if (newProject !== project) {
    writeFileSync(projectPath, newProject);
    changed.push(`project.config.json: appid ${appid}`);
  }
  const newApp = app.replace(INIT, (call) => {
    const rest = call
      .replace(/^wx\.cloud\.init\(\{/, '')
      .replace(/\}\)$/, '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '' && !/^env\s*:/.test(s));
    return `wx.cloud.init({ ${[`env: '${envId}'`, ...rest].join(', ')} })`;
  });
  if (newApp !== app) {
    writeFileSync(appPath, newApp);
    changed.push(`miniprogram/app.ts: wx.cloud.init env ${envId}`);
  }
  return { changed, problems };
}

function main(): number {
  const argv = process.argv.slice(2);
  let envFile: string | undefined;
  let project = root;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--env-file') envFile = argv[++i];
    else if (argv[i] === '--project') project = resolve(argv[++i] ?? '');
    else {
      console.error(
        'usage: npm run configure -- [--env-file deploy.env] [--project dir (default: this repository)]',
      );
      return 2;
    }
  }
  let vars = fromProcessEnv(process.env);
  if (envFile) {
    const file = readEnvFile(resolve(envFile));
    if (file.problems.some((p) => p.startsWith('cannot read'))) {
      console.log(`✖ ${file.problems[0]}`);
      return 1;
    }
    // Only the appid and the environment matter here; the doctor reports the rest.
    for (const p of file.problems) console.log(`! ${envFile}: ${p}`);
    vars = { ...vars, ...file.vars };
  }
  const r = configureMiniProgram(vars, project);
  for (const p of r.problems) console.log(`✖ ${p}`);
  if (r.problems.length > 0) return 1;
  for (const c of r.changed) console.log(`✔ ${c}`);
  if (r.changed.length === 0) console.log('✔ the mini-program already points at this appid and environment');
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exit(main());
