import { buildFunctions } from '../scripts/build';

// Integration tests run the built bundles, exactly what CloudBase runs; build them once.
export default async function setup(): Promise<void> {
  await buildFunctions();
}
