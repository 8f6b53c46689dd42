/**
 * `npm run doctor [-- --env-file deploy.env] [--online]`
 *
 * Checks a configuration before going live, one line per check (✔ ok, ! warning, ✖ must be
 * fixed), and exits 1 on any ✖. `--online` adds a signed orderquery round trip against
 * WXPAY_BASE_URL (WeChat Pay by default), which proves the key, appid and mch_id.
 */
import { resolve } from 'node:path';
import { checkConfiguration, checkOnline, renderChecks } from './golive/checks';
import { fromProcessEnv, readEnvFile } from './golive/envfile';

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  let envFile: string | undefined;
  let online = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--env-file') envFile = argv[++i];
    else if (a === '--online') online = true;
    else if (a === '--help' || a === '-h') {
      console.log(
        'usage: npm run doctor -- [--env-file deploy.env] [--online]  (default: the process environment)',
      );
      return 0;
    } else {
      console.error(`unknown argument ${a}`);
      return 2;
    }
  }

  let vars = fromProcessEnv(process.env);
  if (envFile) {
    const file = readEnvFile(resolve(envFile));
    if (file.problems.length > 0) {
      for (const p of file.problems) console.log(`✖ ${envFile}: ${p}`);
      return 1;
    }
    vars = { ...vars, ...file.vars };
  }

  const checks = checkConfiguration(vars, { now: Date.now() });
  if (online) checks.push(await checkOnline(vars));
  console.log(renderChecks(checks));
  const failed = checks.filter((c) => c.status === 'fail').length;
  const warned = checks.filter((c) => c.status === 'warn').length;
  console.log(
    `\n${failed === 0 ? 'ready' : 'not ready'}: ${failed} to fix, ${warned} warning(s)${online ? '' : '; add --online to check the key with WeChat Pay'}`,
  );
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
