/**
 * Runs the emulator on its own: `tsx sandbox/tcb/cli.ts [--data-dir DIR] [--port N]
 * [--seed sandbox/tcb/indexes.json]`. Prints one JSON line {serviceUrl} when it is ready.
 */
import { parseArgs } from 'node:util';
import { loadSeedConfig, startTcbEmulator } from './index';

const { values } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    seed: { type: 'string' },
  },
});

async function main(): Promise<void> {
  const seed = values.seed ? loadSeedConfig(values.seed) : { collections: [], indexes: {} };
  const emulator = await startTcbEmulator({
    host: values.host,
    port: Number(values.port),
    ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
    collections: seed.collections,
    indexes: seed.indexes,
  });
  process.stdout.write(`${JSON.stringify({ serviceUrl: emulator.serviceUrl })}\n`);
  const stop = () => {
    void emulator.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
