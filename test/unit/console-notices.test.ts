/** The console's 服务通知 routes refuse what the page cannot mean, before reaching the emulator. */
import { describe, expect, it } from 'vitest';
import { noticeRoutes } from '../../sandbox/console/notices';

class Bad extends Error {}
// Port 9 on 127.0.0.1: any request that got through would fail differently (not a Bad).
const routes = noticeRoutes(
  'http://127.0.0.1:9/admin',
  ['o_shopper_demo', 'o_admin_demo'],
  (m) => new Bad(m),
);

describe('console notice routes', () => {
  it('serve only the console’s own users', async () => {
    await expect(routes['POST notices']!({ openid: 'o_someone_else' })).rejects.toThrow(Bad);
    await expect(routes['POST notices']!({})).rejects.toThrow(
      "openid must be one of the console's users: o_shopper_demo, o_admin_demo",
    );
  });

  it('answer a prompt of 1 to 3 templates, accept or reject', async () => {
    const subscribe = routes['POST notices/subscribe']!;
    const openid = 'o_admin_demo';
    await expect(subscribe({ openid, tmplIds: [] })).rejects.toThrow('tmplIds must list 1 to 3 template ids');
    await expect(subscribe({ openid, tmplIds: ['a', 'b', 'c', 'd'] })).rejects.toThrow(Bad);
    await expect(subscribe({ openid, tmplIds: ['a'], answer: 'maybe' })).rejects.toThrow(
      'answer must be accept or reject',
    );
    // A well-formed prompt goes on to the emulator (here: nothing listens).
    await expect(subscribe({ openid, tmplIds: ['a'] })).rejects.not.toThrow(Bad);
  });
});
