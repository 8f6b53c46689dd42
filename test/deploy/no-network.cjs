// Preloaded into the dry-run child process: any TCP connection or DNS lookup fails loudly,
// so a dry run that tried to reach CloudBase would exit non-zero.
const net = require('node:net');
const dns = require('node:dns');
const original = net.Socket.prototype.connect;
net.Socket.prototype.connect = function connect(...args) {
  const o = args[0];
  const tcp =
    (typeof o === 'object' && o !== null && (o.port !== undefined || o.host !== undefined)) ||
    typeof o === 'number';
  if (tcp) {
    process.stderr.write('NETWORK ATTEMPT BLOCKED\n');
    process.exit(97);
  }
  return original.apply(this, args);
};
dns.lookup = () => {
  process.stderr.write('NETWORK ATTEMPT BLOCKED (dns)\n');
  process.exit(97);
};
