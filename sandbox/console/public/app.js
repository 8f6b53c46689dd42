// The sandbox console. Shopper and merchant actions call the cloud functions through the
// gateway exactly as the mini-program does (POST /functions/<name>, x-wx-openid); the
// WeChat side (cashier, faults, notifies, reconcile) goes through /console/api/*.
// Plain ES module, no build step: the gateway serves this file as it is.

const POLL_MS = 1000;

const ORDER_STATUS = {
  NOTPAY: '待支付 Unpaid',
  PAID: '已支付 Paid',
  CLOSED: '已关闭 Closed',
};
const REFUND_STATUS = {
  PENDING_REVIEW: '待审核 Pending review',
  REJECTED: '已拒绝 Rejected',
  APPROVED: '待退款 Approved',
  PROCESSING: '退款中 Processing',
  SUCCESS: '退款完成 Refunded',
  FAILED: '退款失败 Failed',
};

// ---- money: integer fen in, string out; never a float multiply (9.8 * 100 !== 980) ----

export function fenToYuan(fen) {
  const abs = Math.abs(fen);
  return `${fen < 0 ? '-' : ''}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

/** '12.3' → 1230; null when it is not an amount with at most two decimals. */
export function yuanToFen(text) {
  const m = /^(\d{1,9})(?:\.(\d{1,2}))?$/.exec(String(text).trim());
  return m ? Number(m[1]) * 100 + Number((m[2] ?? '').padEnd(2, '0')) : null;
}

const money = (fen) => `¥${fenToYuan(fen)}`;

/** Beijing time, whatever the browser's zone: order numbers, WeChat and the bills use it. */
function time(ms) {
  if (!ms) return '';
  return new Date(ms).toLocaleTimeString('zh-CN', { hour12: false, timeZone: 'Asia/Shanghai' });
}

// ---- DOM: built with nodes, never innerHTML, because reasons and names are user data ----

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'className') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

const $ = (id) => document.getElementById(id);

let toastTimer;
function toast(text, kind = 'info') {
  const el = $('toast');
  el.textContent = text;
  el.className = kind;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, 4000);
}

// ---- calls ----

const state = {
  info: null,
  /** The openid the page acts as. */
  openid: '',
  /** Last rendered data per section, so a poll that changed nothing leaves the DOM (and inputs) alone. */
  rendered: {},
  /** Review comments being typed, kept across re-renders. */
  comments: {},
  refundFor: null,
};

/** Calls a cloud function as the current identity; resolves to data or throws with the error code. */
async function call(name, event = {}) {
  const res = await fetch(`/functions/${name}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-wx-openid': state.openid },
    body: JSON.stringify(event),
  });
  const body = await res.json();
  if (body && body.ok === true) return body.data;
  if (body && body.ok === false) throw new Error(`${body.error.code}: ${body.error.message}`);
  throw new Error(body?.errMsg ?? `HTTP ${res.status}`);
}

async function api(path, body) {
  const res = await fetch(`/console/api/${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const out = await res.json();
  if (!res.ok) throw new Error(out.error ?? `HTTP ${res.status}`);
  return out;
}

/** Runs an action from a button, disabling it meanwhile and reporting failure. */
async function act(button, fn) {
  if (button) button.disabled = true;
  try {
    await fn();
  } catch (e) {
    toast(e.message, 'error');
  } finally {
    if (button) button.disabled = false;
  }
  await refresh();
}

// ---- identity ----

function identities() {
  const { shoppers, adminOpenid } = state.info;
  const who = [
    ...shoppers.map((s, i) => ({
      openid: s.openid,
      label: s.label,
      testid: i === 0 ? 'as-shopper-a' : 'as-shopper-b',
    })),
    { openid: adminOpenid, label: '商家 Merchant', testid: 'as-merchant' },
  ];
  $('identities').replaceChildren(
    ...who.map((w) =>
      h(
        'button',
        {
          type: 'button',
          'data-testid': w.testid,
          'aria-pressed': String(state.openid === w.openid),
          title: w.openid,
          onclick: () => switchTo(w.openid),
        },
        w.label,
      ),
    ),
  );
}

function switchTo(openid) {
  state.openid = openid;
  state.rendered = {};
  const merchant = openid === state.info.adminOpenid;
  $('shop').hidden = merchant;
  $('merchant').hidden = !merchant;
  $('shopper-name').textContent = merchant ? '' : `openid ${openid}`;
  identities();
  void refresh();
}

// ---- shopper ----

function renderProducts(products) {
  $('products').replaceChildren(
    ...products.map((p) =>
      h(
        'div',
        { className: 'card product', 'data-testid': `product-${p.id}` },
        h('div', { className: 'name' }, p.name),
        p.description ? h('div', { className: 'muted' }, p.description) : null,
        h('div', { className: 'price' }, money(p.priceFen)),
        h(
          'button',
          {
            type: 'button',
            className: 'primary',
            'data-testid': `buy-${p.id}`,
            onclick: (e) =>
              act(e.currentTarget, async () => {
                const created = await call('createOrder', { items: [{ productId: p.id, quantity: 1 }] });
                openCashier(created, p.name);
              }),
          },
          '购买 Buy',
        ),
      ),
    ),
  );
}

function refundLine(r) {
  return h(
    'li',
    { 'data-testid': 'refund', 'data-refund-id': r.refundId },
    h(
      'span',
      { className: `badge ${r.status}`, 'data-testid': 'refund-status', 'data-status': r.status },
      REFUND_STATUS[r.status],
    ),
    ` ${money(r.refundFee)} · ${r.reason}`,
    r.comment ? h('span', { className: 'muted' }, ` · 商家: ${r.comment}`) : null,
    r.failReason ? h('span', { className: 'error' }, ` · ${r.failReason}`) : null,
    h('span', { className: 'muted mono' }, ` ${r.refundId}`),
  );
}

function renderOrders(rows) {
  if (rows.length === 0) {
    $('orders').replaceChildren(
      h('p', { className: 'muted' }, '还没有订单 No orders yet: buy something above.'),
    );
    return;
  }
  $('orders').replaceChildren(
    ...rows.map(({ order: o, refunds }) =>
      h(
        'div',
        { className: 'card order', 'data-testid': 'order', 'data-order-id': o.orderId },
        h(
          'div',
          { className: 'row' },
          h(
            'span',
            { className: `badge ${o.status}`, 'data-testid': 'order-status', 'data-status': o.status },
            ORDER_STATUS[o.status],
          ),
          h('b', {}, money(o.totalFee)),
          h('span', {}, o.description),
          h('span', { className: 'muted mono' }, o.orderId),
          h('span', { className: 'muted' }, time(o.createdAtMs)),
        ),
        o.flag ? h('div', { className: 'error' }, `⚠ ${o.flag}: 关单后到账 money arrived after close`) : null,
        o.status === 'PAID' && (o.refundedFee > 0 || o.refundReservedFee > 0)
          ? h(
              'div',
              { className: 'muted' },
              `已退 refunded ${money(o.refundedFee)} · 退款中 reserved ${money(o.refundReservedFee)}`,
            )
          : null,
        h(
          'div',
          { className: 'actions' },
          o.payable
            ? h(
                'button',
                {
                  type: 'button',
                  className: 'primary',
                  'data-testid': 'order-pay',
                  onclick: (e) =>
                    act(e.currentTarget, async () =>
                      openCashier(await call('createOrder', { orderId: o.orderId }), o.description),
                    ),
                },
                '去支付 Pay',
              )
            : null,
          o.status === 'NOTPAY'
            ? h(
                'button',
                {
                  type: 'button',
                  'data-testid': 'order-query',
                  onclick: (e) =>
                    act(e.currentTarget, async () => {
                      const q = await call('queryOrder', { orderId: o.orderId });
                      toast(`queryOrder → ${ORDER_STATUS[q.order.status]}`);
                    }),
                },
                '查单 Query',
              )
            : null,
          o.status === 'PAID' && o.refundableFee > 0
            ? h(
                'button',
                { type: 'button', 'data-testid': 'order-refund', onclick: () => openRefundForm(o) },
                '申请退款 Refund',
              )
            : null,
        ),
        refunds.length > 0 ? h('ul', { className: 'refunds' }, refunds.map(refundLine)) : null,
      ),
    ),
  );
}

async function refreshShop() {
  const [products, orders] = await Promise.all([
    state.rendered.products ? null : call('listProducts'),
    call('listOrders'),
  ]);
  if (products) {
    renderProducts(products.items);
    state.rendered.products = true;
  }
  // queryOrder only for PAID orders (for their refunds): on a NOTPAY order it would ask
  // WeChat and hide what the notify, the fault and reconcile are doing.
  const rows = await Promise.all(
    orders.items.map(async (o) =>
      o.status === 'PAID' ? call('queryOrder', { orderId: o.orderId }) : { order: o, refunds: [] },
    ),
  );
  renderIfChanged('orders', rows, renderOrders);
}

// ---- refund form ----

function openRefundForm(o) {
  state.refundFor = o;
  $('refund-order').textContent =
    `${o.description} · ${o.orderId} · 可退 refundable ${money(o.refundableFee)}`;
  $('refund-amount').value = fenToYuan(o.refundableFee);
  $('refund-reason').value = '';
  $('refund-contact').value = '';
  $('refund-error').textContent = '';
  $('refund-dialog').showModal();
}

async function submitRefund(event) {
  if (event.submitter?.value !== 'submit') return;
  event.preventDefault();
  const o = state.refundFor;
  const refundFee = yuanToFen($('refund-amount').value);
  if (refundFee === null || refundFee <= 0 || refundFee > o.refundableFee) {
    $('refund-error').textContent = `金额须在 ¥0.01 与 ${money(o.refundableFee)} 之间 Amount out of range`;
    return;
  }
  const contact = $('refund-contact').value.trim();
  try {
    await call('applyRefund', {
      orderId: o.orderId,
      refundFee,
      reason: $('refund-reason').value.trim(),
      ...(contact ? { contact } : {}),
    });
    $('refund-dialog').close();
    toast('已提交，待商家审核 Submitted: pending review');
  } catch (e) {
    $('refund-error').textContent = e.message;
  }
  await refresh();
}

// ---- cashier: what wx.requestPayment shows on the phone ----

function openCashier(created, description) {
  const dialog = $('cashier');
  $('cashier-amount').textContent = money(created.totalFee);
  $('cashier-desc').textContent = description;
  $('cashier-order').textContent = `商户单号 ${created.orderId}`;
  $('cashier-order').dataset.orderId = created.orderId;
  dialog.payment = created.payment;
  dialog.showModal();
}

async function cashierChoice(event) {
  const button = event.target.closest('button[data-outcome]');
  if (!button) return;
  const dialog = $('cashier');
  await act(button, async () => {
    const res = await api('pay', { payment: dialog.payment, outcome: button.dataset.outcome });
    dialog.close();
    const ok = res.errMsg === 'requestPayment:ok';
    toast(`wx.requestPayment → ${res.errMsg}`, ok ? 'info' : 'error');
  });
}

// ---- merchant ----

function reviewActions(r) {
  if (r.status !== 'PENDING_REVIEW' && r.status !== 'FAILED') return null;
  const decide = (decision) => (e) =>
    act(e.currentTarget, async () => {
      const comment = (state.comments[r.refundId] ?? '').trim();
      const out = await call('approveRefund', {
        refundId: r.refundId,
        decision,
        ...(comment ? { comment } : {}),
      });
      delete state.comments[r.refundId];
      toast(`approveRefund → ${REFUND_STATUS[out.refund.status]}`);
    });
  return h(
    'div',
    { className: 'actions' },
    h('input', {
      'data-testid': 'review-comment',
      placeholder: '备注 Comment',
      maxlength: 200,
      value: state.comments[r.refundId] ?? '',
      oninput: (e) => {
        state.comments[r.refundId] = e.target.value;
      },
    }),
    h(
      'button',
      { type: 'button', className: 'primary', 'data-testid': 'review-approve', onclick: decide('approve') },
      r.status === 'FAILED' ? '重试 Retry' : '同意 Approve',
    ),
    h('button', { type: 'button', 'data-testid': 'review-reject', onclick: decide('reject') }, '拒绝 Reject'),
  );
}

function renderReviews(refunds) {
  if (refunds.length === 0) {
    $('reviews').replaceChildren(h('p', { className: 'muted' }, '没有退款申请 No refund applications.'));
    return;
  }
  $('reviews').replaceChildren(
    ...refunds.map((r) =>
      h(
        'div',
        { className: 'card review', 'data-testid': 'review', 'data-refund-id': r.refundId },
        h(
          'div',
          { className: 'row' },
          h(
            'span',
            { className: `badge ${r.status}`, 'data-testid': 'review-status', 'data-status': r.status },
            REFUND_STATUS[r.status],
          ),
          h('b', {}, `${money(r.refundFee)} / ${money(r.totalFee)}`),
          h('span', {}, r.reason),
          r.contact ? h('span', { className: 'muted' }, r.contact) : null,
        ),
        h(
          'div',
          { className: 'muted mono' },
          `退款单 ${r.refundId} · 订单 ${r.orderId} · ${r.openid ?? ''} · ${time(r.createdAtMs)}`,
        ),
        r.comment ? h('div', { className: 'muted' }, `备注 comment: ${r.comment}`) : null,
        r.failReason ? h('div', { className: 'error' }, r.failReason) : null,
        reviewActions(r),
      ),
    ),
  );
}

async function refreshMerchant() {
  const page = await call('listRefunds');
  renderIfChanged('reviews', page.items, renderReviews);
}

// ---- sandbox panel ----

function renderNotifies(notifies) {
  $('notifies').replaceChildren(
    ...notifies.slice(0, 30).map((n) => {
      const outcome = n.dropped ? 'dropped' : n.acknowledged ? 'ok' : 'fail';
      return h(
        'tr',
        {
          className: outcome,
          'data-testid': 'notify-row',
          'data-kind': n.kind,
          'data-subject': n.subject,
          'data-outcome': outcome,
        },
        h('td', {}, time(n.timeMs)),
        h('td', {}, n.kind === 'pay' ? '支付 pay' : '退款 refund', n.duplicate ? ' (dup)' : ''),
        h(
          'td',
          { className: 'mono', title: n.subject },
          n.subject,
          h('div', { className: 'muted' }, n.result),
        ),
        h('td', {}, String(n.attempt)),
        h(
          'td',
          {},
          n.dropped ? '已丢弃 dropped (fault)' : `${n.replyStatus ?? '—'} ${n.reply}`,
          n.acknowledged ? ' ✓' : '',
        ),
      );
    }),
  );
}

function renderFaults(f) {
  $('fault-drop-pay').checked = f.dropPayNotifies;
  $('fault-drop-refund').checked = f.dropRefundNotifies;
  $('fault-system-error').value = typeof f.systemErrorRate === 'number' ? String(f.systemErrorRate) : '0';
  $('fault-refund-outcome').value = f.refundOutcome;
  $('fault-refund-error').value = f.refundError ?? '';
}

function wireFaults() {
  const set = (patch) =>
    act(null, async () => {
      renderFaults(await api('faults', patch));
      toast(`faults: ${JSON.stringify(patch)}`);
    });
  $('fault-drop-pay').onchange = (e) => set({ dropPayNotifies: e.target.checked });
  $('fault-drop-refund').onchange = (e) => set({ dropRefundNotifies: e.target.checked });
  $('fault-system-error').onchange = (e) => set({ systemErrorRate: Number(e.target.value) });
  $('fault-refund-outcome').onchange = (e) => set({ refundOutcome: e.target.value });
  $('fault-refund-error').onchange = (e) => set({ refundError: e.target.value || null });
  $('reconcile').onclick = (e) =>
    act(e.currentTarget, async () => {
      const out = await api('reconcile', {});
      const report = Object.entries(out.report ?? {})
        .filter(([, v]) => v !== 0 && v !== false)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
      $('sandbox-result').textContent =
        `reconcile (${out.durationMs} ms): ${report || 'nothing to do 无事可做'}`;
    });
  $('settle').onclick = (e) =>
    act(e.currentTarget, async () => {
      const out = await api('settle', {});
      $('sandbox-result').textContent = `settled ${out.settled} refund(s) 已结算`;
    });
}

function renderInfo(info) {
  $('timings').textContent =
    `时间倍率 time scale ×${info.timeScale}: 退款约 ${info.refundSettleSeconds} 秒后有结果 refunds settle after ~${info.refundSettleSeconds} s; ` +
    `通知首次重试 first notify retry after ${info.notifyRetryFirstSeconds} s. 商户号 mch_id ${info.merchant.mchid}, ${info.merchant.signType}.`;
  $('urls').replaceChildren(
    ...Object.entries(info.urls).flatMap(([k, v]) => [h('dt', {}, k), h('dd', { className: 'mono' }, v)]),
  );
}

// ---- polling ----

function renderIfChanged(key, data, render) {
  const json = JSON.stringify(data);
  if (state.rendered[key] === json) return;
  state.rendered[key] = json;
  render(data);
}

let chain = Promise.resolve();
let queued = 0;
/** Refreshes run one after another, so a click's refresh always sees the click's effect. */
function refresh() {
  queued++;
  chain = chain.then(async () => {
    try {
      const merchant = state.openid === state.info.adminOpenid;
      await Promise.all([
        merchant ? refreshMerchant() : refreshShop(),
        api('notifies').then((n) => renderIfChanged('notifies', n, renderNotifies)),
        api('faults').then((f) => renderIfChanged('faults', f, renderFaults)),
      ]);
      document.body.dataset.ready = 'true';
    } catch (e) {
      toast(e.message, 'error');
    } finally {
      queued--;
    }
  });
  return chain;
}

async function main() {
  state.info = await api('info');
  renderInfo(state.info);
  wireFaults();
  $('cashier').addEventListener('click', cashierChoice);
  $('refund-form').addEventListener('submit', submitRefund);
  switchTo(state.info.shoppers[0].openid);
  // A poll is skipped while another refresh is queued, so a slow stack is not flooded.
  setInterval(() => {
    if (!document.hidden && queued === 0) void refresh();
  }, POLL_MS);
}

void main();
