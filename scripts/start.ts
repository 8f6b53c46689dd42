/**
 * `npm start`: the whole shop offline. Builds the functions, then starts the CloudBase
 * emulator, the WeChat Pay simulator, the function runtime (with the reconcile timer) and
 * the gateway serving the console, persisting everything in .data/ (the local contract in
 * docs/ARCHITECTURE.md §7).
 *
 *   npm start                         console on http://127.0.0.1:8787/
 *   npm start -- --provider v3        new orders through APIv3 (or cloudpay); earlier ones keep theirs
 *   npm start -- --port 8790          or PORT=8790 npm start
 *   npm start -- --help               every option
 */
import { existsSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PROVIDER_NAMES, type ProviderName } from '../cloudfunctions/shared/providers/port';
import { CONSOLE_DIR, DEMO_TIME_SCALE, SECOND_SHOPPER_OPENID, startConsoleStack } from '../sandbox/console';
import { ROOT, type Stack } from '../sandbox/stack';
import { buildFunctions } from './build';

const HELP = `npm start [-- options]   the offline shop and its console

  --port <n>         gateway and console port        (env PORT, default 8787)
  --tcb-port <n>     CloudBase emulator port         (env TCB_PORT, default 8788)
  --wxpay-port <n>   WeChat Pay simulator port       (env WXPAY_PORT, default 8789)
  --data <dir>       data folder                     (env SHOP_DATA_DIR, default .data)
  --time-scale <x>   sandbox time vs WeChat's        (env TIME_SCALE, default ${DEMO_TIME_SCALE})
  --provider <p>     v2, v3 or cloudpay: how new orders are paid (env WXPAY_PROVIDER, default v2);
                     orders of earlier runs keep the provider that made them
  --no-build         start with the functions already in dist/cloudfunctions
  --verbose          log every function call, including the console's polling
  --help             this text

Stops cleanly on Ctrl-C, SIGINT, SIGTERM or SIGHUP, sent to this process or to npm.
`;

/** Function calls the console makes every second; logged only with --verbose. */
const POLLED = /^\[fn\] (listOrders|listProducts|queryOrder|listRefunds|whoami) \S+ .* ok$/;

class UsageError extends Error {}

function port(flag: string | undefined, env: string | undefined, fallback: number, name: string): number {
  const raw = flag ?? env;
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new UsageError(`${name} must be a port number, got ${raw}`);
  return n;
}

function options() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      'tcb-port': { type: 'string' },
      'wxpay-port': { type: 'string' },
      data: { type: 'string' },
      'time-scale': { type: 'string' },
      provider: { type: 'string' },
      'no-build': { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  const env = process.env;
  const scaleRaw = values['time-scale'] ?? env['TIME_SCALE'];
  const timeScale = scaleRaw ? Number(scaleRaw) : DEMO_TIME_SCALE;
  if (!(timeScale > 0 && timeScale <= 1))
    throw new UsageError(`time scale must be in (0, 1], got ${scaleRaw}`);
  const providerRaw = (values.provider ?? env['WXPAY_PROVIDER'] ?? 'v2').toLowerCase();
  if (!(PROVIDER_NAMES as readonly string[]).includes(providerRaw))
    throw new UsageError(`provider must be one of ${PROVIDER_NAMES.join(', ')}, got ${providerRaw}`);
  return {
    help: values.help,
    provider: providerRaw as ProviderName,
    build: !values['no-build'],
    verbose: values.verbose,
    dataDir: resolve(values.data ?? env['SHOP_DATA_DIR'] ?? join(ROOT, '.data')),
    timeScale,
    ports: {
      gateway: port(values.port, env['PORT'], 8787, '--port / PORT'),
      tcb: port(values['tcb-port'], env['TCB_PORT'], 8788, '--tcb-port / TCB_PORT'),
      wxpay: port(values['wxpay-port'], env['WXPAY_PORT'], 8789, '--wxpay-port / WXPAY_PORT'),
    },
  };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** How new orders are paid, and which providers earlier orders keep. */
function providerLine(info: Stack['info']): string {
  const now =
    info.provider === 'v3'
      ? `APIv3 (WeChat Pay public key ${info.v3?.publicKeyId})`
      : info.provider === 'cloudpay'
        ? `cloudPay (callbacks to ${info.cloudPay?.payFunction}, ${info.cloudPay?.refundFunction})`
        : `APIv2, sign type ${info.merchant.signType}`;
  const kept = info.keptProviders?.length ? `; earlier orders keep ${info.keptProviders.join(', ')}` : '';
  return `mch_id ${info.merchant.mchid}, new orders through ${now}${kept}`;
}

/** A stop that takes longer than this exits anyway: the ports are freed with the process. */
const STOP_DEADLINE_MS = 3000;

/**
 * Calls `stop` on SIGINT, SIGTERM or SIGHUP, and when this process's parent goes away.
 * The last one is for supervisors and containers: they signal the npm process, npm passes
 * the signal on to the shell that runs the script (`sh -c`), and Debian's sh (dash) dies of
 * it without passing it on, leaving this process running with its three ports bound. The
 * parent changing (re-parented to init or a subreaper) is the only trace of that here.
 */
function stopWhenAsked(stop: (why: string) => void): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => stop(signal));
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid !== parent) stop('the process that started this one exited');
  }, 250);
  watch.unref();
}

async function main(): Promise<void> {
  const o = options();
  if (o.help) {
    process.stdout.write(HELP);
    return;
  }
  const t0 = Date.now();
  let stack: Stack | undefined;
  // Paths under the working folder are shown relative, others absolute.
  const shown = (p: string) => {
    const rel = relative(process.cwd(), p);
    return rel === '' ? '.' : rel.startsWith('..') ? p : rel;
  };
  let stoppingSinceMs = 0;
  const stop = async (why: string) => {
    if (stoppingSinceMs > 0) {
      // Ctrl-C can reach this process twice (the terminal's process group, and a wrapper
      // relaying it), so only a signal well after the first means "stop waiting".
      if (Date.now() - stoppingSinceMs < 1000) return;
      console.log(`\n${why} again: exiting without waiting`);
      process.exit(130);
    }
    stoppingSinceMs = Date.now();
    console.log(`\n${why}: stopping…`);
    setTimeout(() => {
      console.error(`Not stopped within ${STOP_DEADLINE_MS / 1000} s: exiting anyway.`);
      process.exit(1);
    }, STOP_DEADLINE_MS).unref();
    if (!stack) process.exit(0); // still starting: nothing to close that exiting does not
    await stack.close();
    console.log(`Stopped. The data stays in ${shown(o.dataDir)}/ (delete it to start over).`);
    process.exit(0);
  };
  stopWhenAsked((why) => void stop(why));

  const firstRun = !existsSync(join(o.dataDir, 'merchant.json'));
  console.log(
    firstRun
      ? `Starting the offline shop (first run: creating ${shown(o.dataDir)}/ with certificates, a merchant key and demo products)`
      : `Starting the offline shop with the data in ${shown(o.dataDir)}/`,
  );
  const step = (what: string) => console.log(`  ${seconds(Date.now() - t0).padStart(6)}  ${what}`);

  if (o.build) {
    step('building the cloud functions');
    const fns = await buildFunctions();
    step(`built ${fns.length} functions into dist/cloudfunctions`);
  } else step('using the functions already built in dist/cloudfunctions');

  stack = await startConsoleStack({
    provider: o.provider,
    dataDir: o.dataDir,
    ports: o.ports,
    timeScale: o.timeScale,
    timers: true,
    progress: step,
    functionLog: (line) => {
      if (o.verbose || !POLLED.test(line)) console.log(line);
    },
  });

  const { info } = stack;
  const scale = o.timeScale;
  console.log(`
The offline shop is up (${seconds(Date.now() - t0)}).

  Console      ${info.consoleUrl}   ← open this in a browser
  Gateway      ${info.gatewayUrl}   POST /functions/<name> (header x-wx-openid), ANY /http/<path>
  CloudBase    ${info.tcbServiceUrl}   (emulator serviceUrl)
  WeChat Pay   ${info.wxpayBaseUrl}   (simulator; its CA: ${shown(info.caCertPath)})
  stack.json   ${shown(join(o.dataDir, 'stack.json'))}

  Openids (the x-wx-openid header; the console's buttons switch between them):
    顾客 A  shopper A    ${info.shopperOpenid}
    顾客 B  shopper B    ${SECOND_SHOPPER_OPENID}   (never sees A's orders)
    商家    merchant     ${info.adminOpenid}   (admin: ADMIN_OPENIDS)
  ${providerLine(info)}. Console files: ${shown(CONSOLE_DIR)}/
  Time ×${scale}: refunds settle ~${+(60 * scale).toFixed(2)} s after WeChat accepts them; notify retries after ${+(15 * scale).toFixed(2)} s, ${+(15 * scale).toFixed(2)} s, ${+(30 * scale).toFixed(2)} s…
  The reconcile timer runs every 5 minutes (or click 对账 Reconcile in the console).

Ctrl-C (or SIGTERM) stops everything and frees the ports.`);
}

main().catch((e: unknown) => {
  // Expected failures (a taken port, a bad flag) get one clear line, not a stack trace.
  const message = e instanceof Error ? e.message : String(e);
  const usage =
    e instanceof UsageError || String((e as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
  if (usage || /is taken|EADDRINUSE/.test(message)) {
    console.error(`\n✗ ${message}`);
    if (!usage)
      console.error(
        '  Another `npm start` may be running. Pick other ports: PORT=8790 TCB_PORT=8791 WXPAY_PORT=8792 npm start',
      );
    else console.error(`\n${HELP}`);
  } else {
    console.error('\n✗ the shop did not start:', e);
  }
  process.exit(1);
});
