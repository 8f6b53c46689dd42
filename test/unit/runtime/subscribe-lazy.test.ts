/**
 * A function that sends notices builds its sender at load, but only the first notice
 * initialises the SDK: outside the platform's environment, initialising it probes a metadata
 * server, and a cold start should not pay for what only some calls need.
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';

const sdk = vi.hoisted(() => ({
  inits: 0,
  sent: [] as unknown[],
}));
vi.mock('../../../cloudfunctions/shared/runtime/cloud', () => ({
  initCloud: () => {
    sdk.inits += 1;
    return {
      openapi: {
        subscribeMessage: {
          send: async (m: unknown) => {
            sdk.sent.push(m);
            return { errCode: 0, errMsg: 'openapi.subscribeMessage.send:ok' };
          },
        },
      },
    };
  },
}));

const { subscribeSender } = await import('../../../cloudfunctions/shared/runtime/subscribe');

const message = (touser: string) => ({
  touser,
  templateId: 'T1',
  data: { thing1: { value: '苹果' } },
  miniprogramState: 'formal' as const,
  lang: 'zh_CN' as const,
});

describe('the subscribe-message sender of a deployed function', () => {
  beforeEach(() => {
    sdk.inits = 0;
    sdk.sent = [];
  });

  it('does not initialise the SDK when it is built, only when the first notice goes out', async () => {
    const send = subscribeSender();
    expect(sdk.inits).toBe(0);
    expect(await send(message('o_1'))).toEqual({ ok: true });
    expect(sdk.inits).toBe(1);
    expect(await send(message('o_2'))).toEqual({ ok: true });
    expect(sdk.inits).toBe(1);
    expect(sdk.sent).toMatchObject([{ touser: 'o_1' }, { touser: 'o_2' }]);
  });
});
