/**
 * Hostile and mutated notify bodies through the gateway, as anyone on the internet can post
 * them to the public notify URLs. Each must be answered (XML, FAIL unless it is a genuine
 * no-op), quickly, and change nothing in orders, refunds or payment_events.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encryptRefundNotifyForTest,
  parseXml,
  signPayNotifyForTest,
  toXml,
  verify,
  type WxParams,
} from '../../cloudfunctions/shared/wxpay';
import type { Stack } from '../../sandbox/stack';
import { ADMIN, buyAndPay, newRequestId, SHOPPER, testStack, unwrap } from '../integration/support';
import { dbState, percentile, pool, prng, SEED, scaled, summary } from './support';

let stack: Stack;
let notpay: { orderId: string; totalFee: number };
let paid: { orderId: string; totalFee: number };
let processing: { refundId: string; orderId: string; refundFee: number; totalFee: number };

beforeAll(async () => {
  stack = await testStack({ functionLog: () => {} });
  // The simulator's own notifies are not part of this test.
  stack.simulator.setFaults({ dropPayNotifies: true, dropRefundNotifies: true });
  const created = unwrap(
    await stack.call('createOrder', { items: [{ productId: 'tea-longjing', quantity: 1 }] }, SHOPPER),
  );
  notpay = { orderId: created.orderId, totalFee: created.totalFee };
  stack.simulator.setFaults({ dropPayNotifies: false });
  const paidId = await buyAndPay(stack, SHOPPER, 'chopsticks');
  paid = { orderId: paidId, totalFee: 1990 };
  const applied = unwrap(
    await stack.call(
      'applyRefund',
      { orderId: paidId, refundFee: 500, reason: 'fuzz', requestId: newRequestId() },
      SHOPPER,
    ),
  );
  unwrap(
    await stack.call('approveRefund', { refundId: applied.refund.refundId, decision: 'approve' }, ADMIN),
  );
  processing = { refundId: applied.refund.refundId, orderId: paidId, refundFee: 500, totalFee: 1990 };
  stack.simulator.setFaults({ dropPayNotifies: true });
});
afterAll(() => stack?.close());

interface Case {
  kind: string;
  path: '/pay/notify' | '/refund/notify';
  body: string | Buffer;
  contentType?: string;
  /** A genuine message that changes nothing (answered SUCCESS legitimately). */
  mayAck?: boolean;
  /** Refused by the gateway's own body limit, before any function runs. */
  gatewayLimit?: boolean;
}

function keys() {
  const m = stack.info.merchant;
  return { appid: m.appid, mchId: m.mchid, apiKey: m.apiKey, signType: m.signType };
}

function payNotify(fields: Record<string, string | number>, key = keys().apiKey): string {
  return signPayNotifyForTest(
    { ...keys(), apiKey: key },
    {
      out_trade_no: notpay.orderId,
      total_fee: notpay.totalFee,
      openid: SHOPPER,
      ...fields,
    },
  );
}

function refundNotify(info: Record<string, string | number>, over: { apiKey?: string; mchId?: string } = {}) {
  return encryptRefundNotifyForTest({ ...keys(), ...over }, {
    out_refund_no: processing.refundId,
    out_trade_no: processing.orderId,
    refund_fee: processing.refundFee,
    total_fee: processing.totalFee,
    refund_status: 'SUCCESS',
    ...info,
  } as Parameters<typeof encryptRefundNotifyForTest>[1]);
}

function mutateBytes(rand: () => number, body: Buffer): Buffer {
  const b = Buffer.from(body);
  const n = 1 + Math.floor(rand() * 3);
  let out = b;
  for (let i = 0; i < n; i++) {
    const at = Math.floor(rand() * out.length);
    const op = rand();
    if (op < 0.5) out[at] = Math.floor(rand() * 256);
    else if (op < 0.75) out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
    else
      out = Buffer.concat([out.subarray(0, at), Buffer.from([Math.floor(rand() * 256)]), out.subarray(at)]);
  }
  return out;
}

/** True when `body` is, field for field, a message signed with our key: not a forgery. */
function genuinePay(body: Buffer): boolean {
  try {
    return verify(parseXml(body), keys().apiKey, keys().signType);
  } catch {
    return false;
  }
}

/** The same message with the first hex digit of its sign changed: well-formed, not genuine. */
function badSign(xml: string): string {
  return xml.replace(/<sign><!\[CDATA\[(.)/, (_m, ch: string) => `<sign><![CDATA[${ch === 'A' ? 'B' : 'A'}`);
}

function hostileCorpus(): Case[] {
  const pay = (kind: string, body: string | Buffer, extra: Partial<Case> = {}): Case => ({
    kind,
    path: '/pay/notify',
    body,
    ...extra,
  });
  const refund = (kind: string, body: string | Buffer, extra: Partial<Case> = {}): Case => ({
    kind,
    path: '/refund/notify',
    body,
    ...extra,
  });
  const good = payNotify({});
  const lol = Array.from({ length: 10 }, (_, i) => `<!ENTITY l${i + 1} "${`&l${i};`.repeat(10)}">`).join('');
  const out: Case[] = [];
  for (const p of ['/pay/notify', '/refund/notify'] as const) {
    const c = (kind: string, body: string | Buffer, extra: Partial<Case> = {}) =>
      out.push({ kind, path: p, body, ...extra });
    c(
      'xxe-file',
      `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><return_code>&e;</return_code></xml>`,
    );
    c('xxe-parameter', `<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:1/x.dtd"> %p;]><xml/>`);
    c('billion-laughs', `<?xml version="1.0"?><!DOCTYPE l [<!ENTITY l0 "ha">${lol}]><xml><a>&l10;</a></xml>`);
    c('huge-64k+', `<xml><a><![CDATA[${'A'.repeat(70 * 1024)}]]></a></xml>`);
    c('huge-900k', `<xml><a>${'B'.repeat(900 * 1024)}</a></xml>`);
    c('huge-2m', Buffer.alloc(2 * 1024 * 1024, 0x41), { gatewayLimit: true });
    c('deep', `${'<a>'.repeat(5000)}x${'</a>'.repeat(5000)}`);
    c('deep-in-xml', `<xml>${'<a>'.repeat(50)}${'</a>'.repeat(50)}</xml>`);
    c('non-utf8-latin1', Buffer.from(`<xml><return_code>SUCC\xc9SS</return_code></xml>`, 'latin1'));
    c(
      'non-utf8-gbk',
      Buffer.concat([
        Buffer.from('<xml><a>'),
        Buffer.from([0xd6, 0xd0, 0xce, 0xc4, 0xff]),
        Buffer.from('</a></xml>'),
      ]),
    );
    c('utf16', Buffer.from(good, 'utf16le'));
    c('proto-key', `<xml><__proto__><![CDATA[x]]></__proto__><return_code>SUCCESS</return_code></xml>`);
    c('constructor-key', `<xml><constructor>x</constructor><return_code>SUCCESS</return_code></xml>`);
    c('proto-nested', `<xml><__proto__><isAdmin>true</isAdmin></__proto__></xml>`);
    c('empty', '');
    c('whitespace', '   \n\t ');
    c('json', '{"return_code":"SUCCESS","out_trade_no":"x"}', { contentType: 'application/json' });
    c('form', 'return_code=SUCCESS&out_trade_no=x', { contentType: 'application/x-www-form-urlencoded' });
    c('octet-garbage', Buffer.from([0, 1, 2, 3, 255, 254, 253]), { contentType: 'application/octet-stream' });
    c('base64-garbage', Buffer.from(good).toString('base64'));
    c('html', '<html><body>hi</body></html>', { contentType: 'text/html' });
    c('two-roots', '<xml></xml><xml></xml>');
    c('unclosed', '<xml><return_code>SUCCESS');
    c('cdata-breakout', '<xml><a><![CDATA[x]]>]]></a></xml>');
    c('nul', '<xml><a>\u0000</a></xml>');
    c('pi-and-comment', `<?xml-stylesheet href="x"?><!-- c --><xml><return_code>FAIL</return_code></xml>`);
    c('attributes', '<xml return_code="SUCCESS"><sign a="b">x</sign></xml>');
    c('wrong-root', good.replace('<xml>', '<root>').replace('</xml>', '</root>'));
    c('multipart', `--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n${good}\r\n--b--`, {
      contentType: 'multipart/form-data; boundary=b',
    });
    c('no-content-type', badSign(good), { contentType: '' });
  }
  const f = { out_trade_no: notpay.orderId, total_fee: notpay.totalFee };
  out.push(
    pay('duplicate-field', good.replace('</xml>', `<out_trade_no>${paid.orderId}</out_trade_no></xml>`)),
    pay('duplicate-total', good.replace('</xml>', '<total_fee>1</total_fee></xml>')),
    pay('missing-sign', good.replace(/<sign>.*?<\/sign>/, '')),
    pay('empty-sign', good.replace(/<sign>.*?<\/sign>/, '<sign></sign>')),
    pay('valid-xml-wrong-sign', badSign(good)),
    pay('wrong-key', payNotify({}, 'WRONGKEYWRONGKEYWRONGKEYWRONGKEY')),
    pay(
      'md5-when-hmac',
      signPayNotifyForTest(
        { ...keys(), signType: keys().signType === 'MD5' ? 'HMAC-SHA256' : 'MD5' },
        { ...f },
      ),
    ),
    pay('unknown-order', payNotify({ out_trade_no: '20990101000000NOSUCHORDER' })),
    pay('amount-plus-1', payNotify({ total_fee: notpay.totalFee + 1, cash_fee: notpay.totalFee + 1 })),
    pay('amount-minus-1', payNotify({ total_fee: notpay.totalFee - 1, cash_fee: notpay.totalFee - 1 })),
    pay('amount-zero', payNotify({ total_fee: 0 })),
    pay('amount-negative', payNotify({ total_fee: -notpay.totalFee })),
    pay('amount-float', payNotify({ total_fee: `${notpay.totalFee}.0` })),
    pay('amount-yuan', payNotify({ total_fee: (notpay.totalFee / 100).toFixed(2) })),
    pay('amount-padded', payNotify({ total_fee: `0${notpay.totalFee}` })),
    pay('amount-spaces', payNotify({ total_fee: ` ${notpay.totalFee}` })),
    pay('amount-exp', payNotify({ total_fee: `${notpay.totalFee / 100}e2` })),
    pay('other-appid', payNotify({ appid: 'wxotherappid000001' })),
    pay('other-mchid', payNotify({ mch_id: '1900000999' })),
    pay('return-fail', payNotify({ return_code: 'FAIL' })),
    pay('result-fail', payNotify({ result_code: 'FAIL' }), { mayAck: true }),
    pay(
      'missing-out-trade-no',
      toXml(Object.fromEntries(Object.entries(parseXml(good)).filter(([k]) => k !== 'out_trade_no'))),
    ),
    pay('replay-of-paid-order', payNotify({ out_trade_no: paid.orderId, total_fee: paid.totalFee }), {
      mayAck: true,
    }),
    pay('paid-order-other-amount', payNotify({ out_trade_no: paid.orderId, total_fee: paid.totalFee + 1 })),
    pay('base64-of-valid', Buffer.from(Buffer.from(good).toString('base64')), { contentType: 'text/plain' }),
    refund('refund-wrong-key', refundNotify({}, { apiKey: 'WRONGKEYWRONGKEYWRONGKEYWRONGKEY' })),
    refund('refund-other-mchid', refundNotify({}, { mchId: '1900000999' })),
    refund('refund-unknown', refundNotify({ out_refund_no: 'RNOSUCHREFUND' })),
    refund('refund-fee-plus-1', refundNotify({ refund_fee: processing.refundFee + 1 })),
    refund('refund-fee-minus-1', refundNotify({ refund_fee: processing.refundFee - 1 })),
    refund('refund-total-plus-1', refundNotify({ total_fee: processing.totalFee + 1 })),
    refund('refund-other-order', refundNotify({ out_trade_no: notpay.orderId })),
    refund('refund-processing', refundNotify({ refund_status: 'PROCESSING' }), { mayAck: true }),
    refund('refund-return-fail', toXml({ ...parseXml(refundNotify({})), return_code: 'FAIL' })),
    refund('refund-no-req-info', refundNotify({}).replace(/<req_info>.*?<\/req_info>/, '')),
    refund(
      'refund-req-info-not-base64',
      refundNotify({}).replace(/<req_info><!\[CDATA\[.*?\]\]>/, '<req_info><![CDATA[!!!notbase64$$$]]>'),
    ),
    refund(
      'refund-req-info-truncated',
      refundNotify({}).replace(
        /<req_info><!\[CDATA\[(.*?)\]\]>/,
        (_m, v: string) => `<req_info><![CDATA[${v.slice(0, 24)}]]>`,
      ),
    ),
    refund(
      'refund-req-info-plaintext',
      refundNotify({}).replace(
        /<req_info><!\[CDATA\[.*?\]\]>/,
        `<req_info><![CDATA[${Buffer.from('<root><out_refund_no>x</out_refund_no></root>').toString('base64')}]]>`,
      ),
    ),
  );
  return out;
}

function mutatedCorpus(rand: () => number, count: number): { cases: Case[]; skippedGenuine: number } {
  const cases: Case[] = [];
  let skippedGenuine = 0;
  const payBase = Buffer.from(payNotify({}), 'utf8');
  const refundBase = Buffer.from(refundNotify({}), 'utf8');
  while (cases.length < count) {
    if (rand() < 0.6) {
      const body = mutateBytes(rand, payBase);
      // A mutation that still verifies is the genuine notify (e.g. the sign's letter case);
      // sending it would rightly pay the order, so it is not a forgery to fuzz with.
      if (genuinePay(body)) {
        skippedGenuine++;
        continue;
      }
      cases.push({ kind: 'mutated-pay', path: '/pay/notify', body });
    } else {
      // Mutations of a genuine refund notify for a refund that is PROCESSING: any that still
      // decrypts to our refund's exact fields would rightly finish it, so flips hit the
      // envelope or garble req_info blocks; the refund must stay PROCESSING.
      const body = mutateBytes(rand, refundBase);
      let decryptsToSame = false;
      try {
        const p = parseXml(body);
        decryptsToSame =
          p['req_info'] === parseXml(refundBase)['req_info'] &&
          p['mch_id'] === keys().mchId &&
          p['appid'] === keys().appid &&
          p['return_code'] === 'SUCCESS';
      } catch {
        decryptsToSame = false;
      }
      if (decryptsToSame) {
        skippedGenuine++;
        continue;
      }
      cases.push({ kind: 'mutated-refund', path: '/refund/notify', body });
    }
  }
  return { cases, skippedGenuine };
}

async function post(c: Case): Promise<{ status: number; text: string; ms: number }> {
  const t0 = performance.now();
  const headers: Record<string, string> = {};
  if (c.contentType !== '') headers['content-type'] = c.contentType ?? 'text/xml';
  const res = await fetch(`${stack.info.gatewayUrl}/http${c.path}`, {
    method: 'POST',
    body: c.body,
    headers,
  });
  const text = await res.text();
  return { status: res.status, text, ms: performance.now() - t0 };
}

describe('notify fuzzing', () => {
  it('answers every hostile or mutated body with XML FAIL (or a genuine no-op SUCCESS) and changes nothing', async () => {
    const rand = prng(SEED);
    const hostile = hostileCorpus();
    const total = scaled(1500, 20000);
    const { cases: mutated, skippedGenuine } = mutatedCorpus(rand, Math.max(0, total - hostile.length * 3));
    // The hostile set three times over, shuffled among the mutations.
    const corpus = [...hostile, ...hostile, ...hostile, ...mutated].sort(() => rand() - 0.5);
    // Warm every instance the pool will use, so cold starts (module load) are not counted.
    const warm = hostile.filter((h) => h.kind === 'empty');
    await Promise.all(Array.from({ length: 8 }, () => Promise.all(warm.map(post))));
    const before = await dbState(stack);

    const problems: string[] = [];
    const times: number[] = [];
    const slowest = new Map<string, number>();
    let acks = 0;
    let gatewayRefusals = 0;
    const replies = await pool(
      8,
      corpus.map((c) => async () => {
        const r = await post(c);
        times.push(r.ms);
        slowest.set(c.kind, Math.max(slowest.get(c.kind) ?? 0, Math.round(r.ms)));
        return { c, r };
      }),
    );
    for (const { c, r } of replies) {
      if (c.gatewayLimit) {
        if (r.status !== 413) problems.push(`${c.kind}: gateway answered ${r.status}`);
        gatewayRefusals++;
        continue;
      }
      let reply: WxParams | undefined;
      try {
        reply = parseXml(r.text);
      } catch {
        problems.push(`${c.kind}: reply is not XML (${r.status}): ${r.text.slice(0, 80)}`);
        continue;
      }
      if (r.status !== 200 && (r.status < 400 || r.status > 499))
        problems.push(`${c.kind}: HTTP ${r.status}`);
      if (reply['return_code'] === 'SUCCESS') {
        if (!c.mayAck) problems.push(`${c.kind}: answered SUCCESS`);
        acks++;
      } else if (reply['return_code'] !== 'FAIL')
        problems.push(`${c.kind}: return_code ${reply['return_code']}`);
    }
    const after = await dbState(stack);
    const changed =
      (JSON.stringify(after.orders) === JSON.stringify(before.orders) ? 0 : 1) +
      (JSON.stringify(after.refunds) === JSON.stringify(before.refunds) ? 0 : 1) +
      (JSON.stringify(after.events) === JSON.stringify(before.events) ? 0 : 1);
    const maxMs = Math.round(Math.max(...times));
    summary('notify-fuzz', {
      bodies: corpus.length,
      'hostile kinds': new Set(hostile.map((h) => h.kind)).size,
      mutated: mutated.length,
      'genuine mutations skipped': skippedGenuine,
      'legit no-op SUCCESS': acks,
      'gateway 413': gatewayRefusals,
      'state changes': changed,
      crashes: problems.length,
      'p99 ms': Math.round(percentile(times, 99)),
      'max ms': maxMs,
      slowest: [...slowest].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '-',
    });
    expect(problems.slice(0, 20)).toEqual([]);
    expect(after).toEqual(before);
    // A generous ceiling, not a speed target (the benchmarks measure speed).
    expect(maxMs).toBeLessThan(5000);
    // The fuzzed order and refund are still exactly where they were.
    expect(after.orders.find((o) => o._id === notpay.orderId)?.status).toBe('NOTPAY');
    expect(after.refunds.find((r) => r._id === processing.refundId)?.status).toBe('PROCESSING');
  }, 300_000);
});
