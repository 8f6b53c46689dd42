import { describe, expect, it } from 'vitest';
import { DEFAULT_RUNTIME } from '../../scripts/runtimes';
import { configuredRuntime, esbuildTarget, RuntimeChoiceError, recordedMajor } from '../../scripts/target';

describe('the configured function runtime', () => {
  it('is the project default unless CLOUDBASE_FUNCTION_RUNTIME names another CloudBase runtime', () => {
    expect(configuredRuntime({}).name).toBe(DEFAULT_RUNTIME);
    expect(configuredRuntime({ CLOUDBASE_FUNCTION_RUNTIME: ' ' }).name).toBe(DEFAULT_RUNTIME);
    const r = configuredRuntime({ CLOUDBASE_FUNCTION_RUNTIME: 'Nodejs22.21' });
    expect([r.name, esbuildTarget(r)]).toEqual(['Nodejs22.21', 'node22']);
  });

  it('refuses a name CloudBase does not list, naming the ones it does', () => {
    const choose = () => configuredRuntime({ CLOUDBASE_FUNCTION_RUNTIME: 'Nodejs24' });
    expect(choose).toThrow(RuntimeChoiceError);
    expect(choose).toThrow('CLOUDBASE_FUNCTION_RUNTIME=Nodejs24 is not a CloudBase Node.js runtime');
    expect(choose).toThrow('Nodejs24.11');
  });

  it('reads the major a bundle records, and nothing else', () => {
    expect(recordedMajor({ engines: { node: '24.x' } })).toBe(24);
    for (const pkg of [{}, null, { engines: { node: '>=16' } }, { engines: { node: 24 } }, { engines: {} }]) {
      expect(recordedMajor(pkg)).toBeUndefined();
    }
  });
});
