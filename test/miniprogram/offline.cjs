// Preloaded (NODE_OPTIONS=--require) into the miniprogram-ci check and every process it forks:
// a connection or DNS lookup to anything but this machine fails at once and is reported on
// stderr as "OFFLINE: blocked …", so the test sees any attempt to reach WeChat.
const net = require('node:net');
const dns = require('node:dns');

const LOCAL = new Set(['127.0.0.1', '::1', 'localhost']);
const report = (what) => process.stderr.write(`OFFLINE: blocked ${what}\n`);

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  // net.connect() hands over its normalized arguments as one array.
  const first = Array.isArray(args[0]) ? args[0][0] : args[0];
  const o = typeof first === 'object' && first !== null ? first : { port: first, host: args[1] };
  if (o.path === undefined && (o.port !== undefined || o.host !== undefined)) {
    const host = o.host ?? 'localhost';
    if (!LOCAL.has(host)) {
      report(`${host}:${o.port}`);
      setImmediate(() => this.destroy(new Error(`offline: ${host} is not reachable in this test`)));
      return this;
    }
  }
  return connect.apply(this, args);
};

const lookup = dns.lookup;
dns.lookup = function (host, ...rest) {
  if (LOCAL.has(host)) return lookup.call(this, host, ...rest);
  report(`dns ${host}`);
  const cb = rest[rest.length - 1];
  setImmediate(() => cb(Object.assign(new Error(`offline: no DNS for ${host}`), { code: 'ENOTFOUND' })));
  return {};
};
