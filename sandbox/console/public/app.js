// The sandbox console. Shopper and merchant actions call the cloud functions through the
// gateway exactly as the mini-program does (POST /functions/<name>, x-wx-openid); the
// WeChat side (cashier, faults, notifies, reconcile) goes through /console/api/*.
// Plain ES module, no build step: the gateway serves this file as it is. The error messages,
// the refund form's checks, the labels and what each refund state asks of the merchant come
// from the mini-program's own code, bundled by the gateway as /console/shared.js.

import {
  billCheckRow,
  CANCEL_OUTCOME_MESSAGE,
  CONTACT_MAX,
  checkRefundForm,
  confirmDecision,
  decisionResult,
  ERROR_MESSAGES,
  fenToYuan,
  flagNote,
  historyRows,
  merchantGuide,
  NETWORK_MESSAGE,
  ORDER_DISPLAY_LABEL,
  ORDER_STATUS_LABEL,
  orderDisplay,
  parseYuanToFen,
  REASON_MAX,
  REFUND_STATUS_LABEL,
  REJECT_NEEDS_COMMENT,
  rateLimitText,
  shopperNote,
  submissionFor,
  yesterdayBeijing,
} from '/console/shared.js';

const POLL_MS = 1000;

// English beside the mini-program's Chinese labels; the Chinese comes from the shared table.
const ORDER_EN = { NOTPAY: 'Unpaid', PAID: 'Paid', CLOSED: 'Closed' };
const REFUND_EN = {
  PENDING_REVIEW: 'Pending review',
  WITHDRAWN: 'Withdrawn',
  REJECTED: 'Rejected',
  APPROVED: 'Approved',
  PROCESSING: 'Processing',
  SUCCESS: 'Refunded',
  FAILED: 'Failed',
  CLOSED: 'Closed',
  ABNORMAL: 'Abnormal',
};
const orderLabel = (s) => `${ORDER_STATUS_LABEL[s] ?? s} ${ORDER_EN[s] ?? ''}`.trim();
const refundLabel = (s) => `${REFUND_STATUS_LABEL[s] ?? s} ${REFUND_EN[s] ?? ''}`.trim();
const both = (t) => (t ? `${t.zh} · ${t.en}` : '');

/** The views each role can filter by; kept in the URL as ?view=. AFTER_SALE is 售后 (listOrders filter). */
const ORDER_VIEWS = ['', 'NOTPAY', 'PAID', 'AFTER_SALE', 'CLOSED'];
const REFUND_VIEWS = [
  '',
  'PENDING_REVIEW',
  'FAILED',
  'CLOSED',
  'ABNORMAL',
  'APPROVED',
  'PROCESSING',
  'SUCCESS',
  'REJECTED',
  'WITHDRAWN',
];

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
    else if (k === 'value') el.value = v;
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

// ---- state kept across reloads: role and view in the URL, typed comments in the session ----

const COMMENTS_KEY = 'console.comments';

function loadComments() {
  try {
    const v = JSON.parse(sessionStorage.getItem(COMMENTS_KEY) ?? '{}');
    return v && typeof v === 'object' ? v : {};
  } catch {
    return {};
  }
}

function saveComments() {
  try {
    sessionStorage.setItem(COMMENTS_KEY, JSON.stringify(state.comments));
  } catch {
    // A full or disabled storage only loses the draft, never the action.
  }
}

const state = {
  info: null,
  /** 'a', 'b' or 'merchant': who the page acts as (?as=). */
  role: 'a',
  /** The status filter of the role's list (?view=); '' = all. */
  view: '',
  /** Last rendered data per section, so a poll that changed nothing leaves the DOM (and inputs) alone. */
  rendered: {},
  /** Review comments being typed, by refund id; survive re-renders and reloads. */
  comments: loadComments(),
  /** Refunds whose history the merchant opened. */
  openHistory: new Set(),
  /** Refunds with a decision in flight: a second click is ignored, not sent. */
  deciding: new Set(),
  refundFor: null,
  /** The refund form's current submission (requestId and the values it was made for). */
  submission: null,
  applying: false,
  paying: false,
  /** The shop's preset refund reasons (refundReasons), loaded with the first refund form. */
  reasons: [],
  /** The merchant's queue: oldest or newest first (?sort=), and an order number searched for (?q=). */
  sort: 'oldest',
  search: '',
};

function openidOf(role) {
  const { shoppers, adminOpenid } = state.info;
  return role === 'merchant' ? adminOpenid : role === 'b' ? shoppers[1].openid : shoppers[0].openid;
}

const isMerchant = () => state.role === 'merchant';

function readUrl() {
  const p = new URLSearchParams(location.search);
  const as = p.get('as');
  state.role = as === 'b' || as === 'merchant' ? as : 'a';
  const view = p.get('view') ?? '';
  state.view = (isMerchant() ? REFUND_VIEWS : ORDER_VIEWS).includes(view) ? view : '';
  readQueueUrl(p);
}

function writeUrl() {
  const p = new URLSearchParams(location.search);
  p.set('as', state.role);
  if (state.view) p.set('view', state.view);
  else p.delete('view');
  writeQueueUrl(p);
  history.replaceState(null, '', `${location.pathname}?${p}`);
}

// ---- calls ----

/**
 * A function's refusal, shown with the mini-program's message for its code; RATE_LIMITED in
 * Chinese and English with the wait (and how many unpaid orders to settle first).
 */
class CallFailed extends Error {
  constructor(code, detail, error = {}) {
    const known = Object.hasOwn(ERROR_MESSAGES, code);
    super(
      code === 'RATE_LIMITED'
        ? both(rateLimitText(error))
        : code === 'NETWORK'
          ? NETWORK_MESSAGE
          : known
            ? ERROR_MESSAGES[code]
            : ERROR_MESSAGES.INTERNAL,
    );
    this.code = code;
    this.detail = detail;
  }
}

/** What a failure reads on the page: the localized message, then the code for the developer. */
function describe(e) {
  return e instanceof CallFailed ? `${e.message} · ${e.code}` : e.message;
}

/** Calls a cloud function as the current identity; resolves to data or throws CallFailed. */
async function call(name, event = {}) {
  let res;
  try {
    res = await fetch(`/functions/${name}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-wx-openid': openidOf(state.role) },
      body: JSON.stringify(event),
    });
  } catch (e) {
    throw new CallFailed('NETWORK', `${name}: ${e.message}`);
  }
  const body = await res.json().catch(() => null);
  if (body && body.ok === true) return body.data;
  if (body && body.ok === false) {
    console.warn(`${name} → ${body.error.code}: ${body.error.message}`);
    throw new CallFailed(body.error.code, body.error.message, body.error);
  }
  throw new CallFailed('INTERNAL', `${name}: ${body?.errMsg ?? `HTTP ${res.status}`}`);
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
    toast(describe(e), 'error');
  } finally {
    if (button) button.disabled = false;
  }
  await refresh();
}

// ---- identity and views ----

function identities() {
  const who = [
    { role: 'a', label: state.info.shoppers[0].label, testid: 'as-shopper-a' },
    { role: 'b', label: state.info.shoppers[1].label, testid: 'as-shopper-b' },
    { role: 'merchant', label: '商家 Merchant', testid: 'as-merchant' },
  ];
  $('identities').replaceChildren(
    ...who.map((w) =>
      h(
        'button',
        {
          type: 'button',
          'data-testid': w.testid,
          'aria-pressed': String(state.role === w.role),
          title: openidOf(w.role),
          onclick: () => switchTo(w.role, ''),
        },
        w.label,
      ),
    ),
  );
}

function filterTabs() {
  const merchant = isMerchant();
  const views = merchant ? REFUND_VIEWS : ORDER_VIEWS;
  const label = (v) =>
    v === ''
      ? '全部 All'
      : v === 'AFTER_SALE'
        ? '售后 After-sale'
        : merchant
          ? refundLabel(v)
          : orderLabel(v);
  $(merchant ? 'refund-filters' : 'order-filters').replaceChildren(
    ...views.map((v) =>
      h(
        'button',
        {
          type: 'button',
          'data-testid': `view-${v || 'all'}`,
          'aria-pressed': String(state.view === v),
          onclick: () => switchTo(state.role, v),
        },
        label(v),
      ),
    ),
  );
}

function switchTo(role, view) {
  state.role = role;
  state.view = view;
  state.rendered = {};
  writeUrl();
  const merchant = isMerchant();
  $('shop').hidden = merchant;
  $('merchant').hidden = !merchant;
  $('shopper-name').textContent = merchant ? '' : `openid ${openidOf(role)}`;
  identities();
  filterTabs();
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

/** The shopper's line for a refund: label, amount, reason, the merchant's comment, a neutral note. */
function refundLine(r) {
  const note = shopperNote(r);
  return h(
    'li',
    { 'data-testid': 'refund', 'data-refund-id': r.refundId },
    h(
      'span',
      { className: `badge ${r.status}`, 'data-testid': 'refund-status', 'data-status': r.status },
      refundLabel(r.status),
    ),
    ` ${money(r.refundFee)} · ${r.reason}`,
    r.comment ? h('span', { className: 'muted' }, ` · 商家: ${r.comment}`) : null,
    // Never r.failReason here: WeChat's reason is about the merchant's account.
    note ? h('div', { className: 'muted', 'data-testid': 'refund-note' }, both(note)) : null,
    h('div', { className: 'muted mono id' }, r.refundId),
    r.status === 'PENDING_REVIEW' ? withdrawButton(r) : null,
  );
}

function renderOrders(rows) {
  if (rows.length === 0) {
    $('orders').replaceChildren(
      h(
        'p',
        { className: 'muted' },
        state.view
          ? '没有这种状态的订单 No orders in this state.'
          : '还没有订单 No orders yet: buy something above.',
      ),
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
            orderLabel(o.status),
          ),
          orderDisplayBadge(o),
          h('b', {}, money(o.totalFee)),
          h('span', {}, o.description),
          h('span', { className: 'muted' }, time(o.createdAtMs)),
        ),
        h('div', { className: 'muted mono id' }, o.orderId),
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
          o.payable ? cancelOrderButton(o) : null,
          o.status === 'NOTPAY'
            ? h(
                'button',
                {
                  type: 'button',
                  'data-testid': 'order-query',
                  onclick: (e) =>
                    act(e.currentTarget, async () => {
                      const q = await call('queryOrder', { orderId: o.orderId });
                      toast(`queryOrder → ${orderLabel(q.order.status)}`);
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
    call('listOrders', listOrdersEvent(state.view)),
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
  // A new form is a new submission; retries of it (same values) keep its requestId.
  state.submission = null;
  $('refund-order').textContent =
    `${o.description} · ${o.orderId} · 可退 refundable ${money(o.refundableFee)}`;
  $('refund-amount').value = fenToYuan(o.refundableFee);
  void fillReasonChoices();
  $('refund-reason').value = '';
  $('refund-reason').maxLength = REASON_MAX;
  $('refund-contact').value = '';
  $('refund-contact').maxLength = CONTACT_MAX;
  showFormError(null, '');
  $('refund-dialog').showModal();
}

function showFormError(field, message) {
  for (const f of ['amount', 'reasonCode', 'reason', 'contact']) {
    const input = fieldInput(f);
    if (f === field) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }
  $('refund-error').textContent = message;
  if (field) fieldInput(field).focus();
}

function setApplying(on) {
  state.applying = on;
  const submit = document.querySelector('[data-testid="refund-submit"]');
  submit.disabled = on;
  submit.textContent = on ? '提交中… Submitting' : '提交 Submit';
}

async function submitRefund(event) {
  event.preventDefault();
  if (event.submitter?.value === 'cancel') {
    if (!state.applying) $('refund-dialog').close();
    return;
  }
  // Synchronous guard: a double click lands here twice before the button re-renders disabled.
  if (state.applying) return;
  const o = state.refundFor;
  const check = checkRefundForm(
    o.orderId,
    {
      amount: $('refund-amount').value,
      reasonCode: $('refund-reason-code').value,
      reason: $('refund-reason').value,
      contact: $('refund-contact').value,
    },
    o.refundableFee,
    state.reasons,
  );
  if (!check.ok) {
    showFormError(check.field, check.message);
    return;
  }
  const e = check.event;
  state.submission = submissionFor(state.submission, [
    e.orderId,
    e.refundFee,
    e.reasonCode,
    e.reason,
    e.contact,
  ]);
  showFormError(null, '');
  setApplying(true);
  try {
    await call('applyRefund', { ...e, requestId: state.submission.requestId });
    $('refund-dialog').close();
    toast('已提交，待商家审核 Submitted: pending review');
  } catch (err) {
    showFormError(null, describe(err));
  } finally {
    setApplying(false);
  }
  await refresh();
}

// ---- cashier: what wx.requestPayment shows on the phone ----

function cashierButtons() {
  return [...$('cashier').querySelectorAll('button[data-outcome]')];
}

function openCashier(created, description) {
  const dialog = $('cashier');
  $('cashier-amount').textContent = money(created.totalFee);
  $('cashier-desc').textContent = description;
  $('cashier-order').textContent = `商户单号 ${created.orderId}`;
  $('cashier-order').dataset.orderId = created.orderId;
  dialog.payment = created.payment;
  for (const b of cashierButtons()) b.disabled = false;
  dialog.showModal();
}

async function cashierChoice(event) {
  const button = event.target.closest('button[data-outcome]');
  if (!button || state.paying) return;
  const dialog = $('cashier');
  // One choice per payment: while it is in flight, the other buttons (and Esc) do nothing.
  state.paying = true;
  dialog.setAttribute('aria-busy', 'true');
  for (const b of cashierButtons()) b.disabled = true;
  try {
    const res = await api('pay', { payment: dialog.payment, outcome: button.dataset.outcome });
    dialog.close();
    const ok = res.errMsg === 'requestPayment:ok';
    toast(`wx.requestPayment → ${res.errMsg}`, ok ? 'info' : 'error');
  } catch (e) {
    toast(describe(e), 'error');
  } finally {
    state.paying = false;
    dialog.removeAttribute('aria-busy');
    for (const b of cashierButtons()) b.disabled = false;
  }
  await refresh();
}

// ---- merchant ----

async function decide(r, decision, button) {
  if (state.deciding.has(r.refundId)) return;
  const comment = (state.comments[r.refundId] ?? '').trim();
  const action = merchantGuide(r).actions.find((a) => a.decision === decision);
  if (action?.needsComment && comment === '') {
    toast(REJECT_NEEDS_COMMENT, 'error');
    return;
  }
  // Money moves on approve and retry, and cannot be called back: say how much, and ask. A
  // second click while the question is open is ignored like one while the call runs.
  state.deciding.add(r.refundId);
  const ask = confirmDecision(decision, r, comment);
  if (!(await confirmAction(ask.title, ask.content, ask.confirm))) {
    state.deciding.delete(r.refundId);
    return;
  }
  // The list may have been redrawn while the question was open: find the card again.
  const buttons = () => [
    ...document.querySelectorAll(
      `[data-testid="review"][data-refund-id="${CSS.escape(r.refundId)}"] button[data-decision]`,
    ),
    button,
  ];
  for (const b of buttons()) b.disabled = true;
  try {
    const out = await call('approveRefund', {
      refundId: r.refundId,
      decision,
      ...(comment ? { comment } : {}),
    });
    delete state.comments[r.refundId];
    saveComments();
    toast(both(decisionResult(decision, r, out.refund)));
  } catch (e) {
    toast(describe(e), 'error');
  } finally {
    state.deciding.delete(r.refundId);
    for (const b of buttons()) b.disabled = false;
  }
  await refresh();
}

function reviewActions(r) {
  const guide = merchantGuide(r);
  if (guide.actions.length === 0) return null;
  return h(
    'div',
    { className: 'actions' },
    h('input', {
      'data-testid': 'review-comment',
      'data-focus-key': `comment:${r.refundId}`,
      'aria-label': '备注 Comment',
      placeholder: '备注 Comment（拒绝时必填 required to reject）',
      maxlength: 200,
      value: state.comments[r.refundId] ?? '',
      oninput: (e) => {
        state.comments[r.refundId] = e.target.value;
        saveComments();
      },
    }),
    ...guide.actions.map((a) =>
      h(
        'button',
        {
          type: 'button',
          className: a.primary ? 'primary' : '',
          'data-testid': `review-${a.decision}`,
          'data-decision': a.decision,
          disabled: state.deciding.has(r.refundId),
          onclick: (e) => decide(r, a.decision, e.currentTarget),
        },
        `${a.label.zh} ${a.label.en}`,
      ),
    ),
  );
}

function historyList(r) {
  const rows = historyRows(r.history);
  if (rows.length === 0) return null;
  return h(
    'details',
    {
      'data-testid': 'review-history',
      open: state.openHistory.has(r.refundId),
      ontoggle: (e) => {
        if (e.target.open) state.openHistory.add(r.refundId);
        else state.openHistory.delete(r.refundId);
      },
    },
    h('summary', {}, `处理记录 History (${rows.length})`),
    h(
      'ol',
      { className: 'history' },
      rows.map((s) =>
        h(
          'li',
          { 'data-testid': 'history-step', 'data-status': s.status },
          h('span', { className: 'muted' }, time(s.atMs)),
          ` ${refundLabel(s.status)} · ${s.source.zh} ${s.source.en}`,
          s.reason ? h('div', { className: 'reason' }, s.reason) : null,
        ),
      ),
    ),
  );
}

function refundLink(testid, text, id) {
  return h(
    'div',
    { className: 'muted link', 'data-testid': testid },
    `${text} `,
    h('a', { href: `#refund-${id}`, className: 'mono id' }, id),
  );
}

function renderReviews(refunds) {
  if (refunds.length === 0) {
    $('reviews').replaceChildren(h('p', { className: 'muted' }, '没有退款申请 No refund applications.'));
    return;
  }
  $('reviews').replaceChildren(
    ...refunds.map((r) => {
      const guide = merchantGuide(r);
      const flag = flagNote(r);
      return h(
        'div',
        {
          className: 'card review',
          id: `refund-${r.refundId}`,
          'data-testid': 'review',
          'data-refund-id': r.refundId,
        },
        h(
          'div',
          { className: 'row' },
          h(
            'span',
            { className: `badge ${r.status}`, 'data-testid': 'review-status', 'data-status': r.status },
            refundLabel(r.status),
          ),
          h('b', {}, `${money(r.refundFee)} / ${money(r.totalFee)}`),
          h('span', {}, r.reason),
          r.contact ? h('span', { className: 'muted' }, r.contact) : null,
        ),
        h(
          'div',
          { className: 'muted mono id' },
          `退款单 ${r.refundId} · 订单 ${r.orderId} · ${r.openid ?? ''} · ${time(r.createdAtMs)}`,
        ),
        r.comment ? h('div', { className: 'muted' }, `备注 comment: ${r.comment}`) : null,
        r.failReason
          ? h(
              'div',
              { className: 'error', 'data-testid': 'review-fail-reason' },
              `微信支付原因 WeChat: ${r.failReason}`,
            )
          : null,
        flag ? h('div', { className: 'flag', 'data-testid': 'review-flag' }, `⚠ ${both(flag)}`) : null,
        r.predecessorId ? refundLink('review-predecessor', '重试自 Retry of', r.predecessorId) : null,
        r.successorId ? refundLink('review-successor', '已重试为 Retried as', r.successorId) : null,
        guide.note ? h('div', { className: 'guide', 'data-testid': 'review-guide' }, both(guide.note)) : null,
        reviewActions(r),
        historyList(r),
      );
    }),
  );
}

async function refreshMerchant() {
  const page = await call('listRefunds', listRefundsEvent());
  renderIfChanged('reviews', page.items, renderReviews);
  renderIfChanged('queue', queueSummary(page), renderQueueBar);
}

// ---- sandbox panel ----

/** How each notify travelled, as the merchant would recognise it. */
const TRANSPORTS = {
  v2: 'APIv2 XML',
  v3: 'APIv3 JSON',
  function: 'cloudPay 回调 callback',
};

/** The provider line: how new orders are paid, and which providers earlier orders keep. */
function providerText(info) {
  const now =
    info.provider === 'v3'
      ? 'APIv3 (RSA)'
      : info.provider === 'cloudpay'
        ? 'cloudPay 云调用支付'
        : `APIv2 (${info.merchant.signType})`;
  const kept = info.keptProviders?.length
    ? `; 早先订单 earlier orders: ${info.keptProviders.join(', ')}`
    : '';
  return `支付方式 provider ${now}${kept}`;
}

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
        h(
          'td',
          {},
          n.kind === 'pay' ? '支付 pay' : '退款 refund',
          n.duplicate ? ' (dup)' : '',
          h('div', { className: 'muted' }, TRANSPORTS[n.transport] ?? ''),
        ),
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

/** Reconcile's report keys as the merchant reads them; keys it adds later show as they are. */
const REPORT_LABELS = {
  ordersChecked: '查看未支付订单 unpaid orders looked at',
  ordersPaid: '→ 已支付 paid',
  ordersClosed: '→ 已关闭 closed',
  refundsSubmitted: '提交退款 refunds submitted',
  refundsFinalized: '退款有结果 refunds finished',
  reservationsReleased: '释放预留 reservations released',
  noticesSent: '发出服务通知 notices sent',
  noticesFailed: '服务通知放弃 notices given up',
  errors: '出错 errors',
  outOfTime: '到时停止 stopped at its time budget',
};
const REPORT_QUIET = new Set(['dbRequests']);

const WAIT_WHY = {
  'pay-notify-grace': (s) =>
    `等支付通知 ${s.notifyGraceSeconds} 秒 · waits ${s.notifyGraceSeconds} s for its pay notify`,
  'refund-query-delay': (s) =>
    `受理 ${s.refundQueryDelaySeconds} 秒后再查 · refundquery ${s.refundQueryDelaySeconds} s after acceptance`,
  'submit-lease': () => '提交中，租约未到期 · its submit lease is held',
  backoff: () => '退避中 · backing off (nextCheckAtMs)',
};
const KIND = { order: '订单 order', refund: '退款 refund' };

function renderReconcile(out) {
  const entries = Object.entries(out.report).filter(([k]) => !REPORT_QUIET.has(k));
  const done = entries.map(([k, v]) => {
    const value = Array.isArray(v)
      ? v.length
      : typeof v === 'object' && v !== null
        ? JSON.stringify(v)
        : String(v);
    return h(
      'li',
      { 'data-testid': `report-${k}`, 'data-value': value },
      `${REPORT_LABELS[k] ?? k}: `,
      h('b', {}, value),
    );
  });
  const waiting = out.waiting.map((w) =>
    h(
      'li',
      {
        'data-testid': 'reconcile-waiting',
        'data-kind': w.kind,
        'data-id': w.id,
        'data-why': w.why,
        'data-due-at-ms': w.dueAtMs,
      },
      `${KIND[w.kind]} `,
      h('span', { className: 'mono id' }, w.id),
      ` ${w.kind === 'order' ? orderLabel(w.status) : refundLabel(w.status)} — ${WAIT_WHY[w.why](out.settings)} → `,
      h('b', {}, time(w.dueAtMs)),
    ),
  );
  const firstDue = out.waiting[0]?.dueAtMs;
  const next = out.nextRunAtMs
    ? `下次定时对账 next timer run ${time(out.nextRunAtMs)}${firstDue ? `；或 ${time(firstDue)} 后再点 or click again after ${time(firstDue)}` : ''}`
    : `定时器未开启 timer off${firstDue ? `：${time(firstDue)} 后再点 click again after ${time(firstDue)}` : ''}`;
  $('sandbox-result').replaceChildren(
    h(
      'div',
      {},
      h('div', {}, h('b', {}, `对账 Reconcile ${time(out.atMs)}`), ` · ${out.durationMs} ms`),
      h('div', { className: 'muted' }, '查看并处理 Looked at and did:'),
      h('ul', { className: 'report inline' }, done),
      h(
        'div',
        { className: 'muted', 'data-testid': 'reconcile-skipped', 'data-count': String(out.waitingTotal) },
        out.waitingTotal === 0
          ? '没有跳过 Nothing skipped: everything due was looked at.'
          : `暂不查看 Skipped for now (${out.waitingTotal})，到时再看 looked at from:`,
      ),
      waiting.length > 0 ? h('ul', { className: 'report' }, waiting) : null,
      h('div', { className: 'muted', 'data-testid': 'reconcile-next' }, next),
      h(
        'details',
        {},
        h('summary', {}, '原始报告 Raw report'),
        h('pre', {}, JSON.stringify(out.report, null, 1)),
      ),
    ),
  );
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
    act(e.currentTarget, async () => renderReconcile(await api('reconcile', {})));
  $('settle').onclick = (e) =>
    act(e.currentTarget, async () => {
      const out = await api('settle', {});
      $('sandbox-result').textContent = `settled ${out.settled} refund(s) 已结算`;
    });
}

function renderInfo(info) {
  const r = info.reconcile;
  $('timings').textContent =
    `时间倍率 time scale ×${info.timeScale}: 退款约 ${info.refundSettleSeconds} 秒后有结果 refunds settle after ~${info.refundSettleSeconds} s; ` +
    `通知首次重试 first notify retry after ${info.notifyRetryFirstSeconds} s. ` +
    `对账 reconcile: 支付通知宽限 pay notify grace ${r.notifyGraceSeconds} s, 退款查询延迟 refundquery delay ${r.refundQueryDelaySeconds} s, ` +
    `${r.timer ? `定时 timer ${r.timer}` : '定时器未开启 timer off'}. 商户号 mch_id ${info.merchant.mchid}, ${providerText(info)}.`;
  $('urls').replaceChildren(
    ...Object.entries(info.urls).flatMap(([k, v]) => [h('dt', {}, k), h('dd', { className: 'mono' }, v)]),
  );
}

// ---- orders: cancel, after-sale view ----

function listOrdersEvent(view) {
  if (view === 'AFTER_SALE') return { filter: 'afterSale' };
  return view ? { status: view } : {};
}

/** The order as the shopper reads it in the mini-program, when that differs from its raw status. */
function orderDisplayBadge(o) {
  const display = orderDisplay(o, Date.now());
  if (display === o.status) return null;
  return h(
    'span',
    { className: 'muted', 'data-testid': 'order-display', 'data-display': display },
    ORDER_DISPLAY_LABEL[display],
  );
}

function cancelOrderButton(o) {
  return h(
    'button',
    {
      type: 'button',
      'data-testid': 'order-cancel',
      onclick: async (e) => {
        const button = e.currentTarget;
        const ok = await confirmAction(
          { zh: '取消订单', en: 'Cancel this order?' },
          {
            zh: `取消后这笔 ${money(o.totalFee)} 的订单不能再支付`,
            en: `The order of ${money(o.totalFee)} can no longer be paid`,
          },
          { zh: '取消订单', en: 'Cancel order' },
        );
        if (!ok) return;
        await act(button, async () => {
          const out = await call('cancelOrder', { orderId: o.orderId });
          toast(`${CANCEL_OUTCOME_MESSAGE[out.outcome]} · cancelOrder → ${out.outcome}`);
        });
      },
    },
    '取消订单 Cancel',
  );
}

// ---- refunds: withdraw, preset reasons ----

function withdrawButton(r) {
  return h(
    'button',
    {
      type: 'button',
      'data-testid': 'refund-withdraw',
      onclick: async (e) => {
        const button = e.currentTarget;
        const ok = await confirmAction(
          { zh: '撤销退款申请', en: 'Withdraw this application?' },
          {
            zh: `撤销这笔 ${money(r.refundFee)} 的退款申请？撤销后可重新申请`,
            en: `Withdraw the refund of ${money(r.refundFee)}; you can apply again`,
          },
          { zh: '撤销', en: 'Withdraw' },
        );
        if (!ok) return;
        await act(button, async () => {
          const out = await call('withdrawRefund', { refundId: r.refundId });
          toast(`已撤销申请 Withdrawn · ${out.refund.status}`);
        });
      },
    },
    '撤销申请 Withdraw',
  );
}

/** The refund form's preset reasons, from refundReasons (once per page). */
async function fillReasonChoices() {
  if (state.reasons.length === 0) {
    try {
      state.reasons = (await call('refundReasons')).apply;
    } catch (e) {
      showFormError(null, describe(e));
      return;
    }
  }
  const select = $('refund-reason-code');
  select.replaceChildren(
    h('option', { value: '' }, '请选择 Choose a reason'),
    ...state.reasons.map((r) => h('option', { value: r.code }, r.label)),
  );
  select.value = '';
}

function fieldInput(field) {
  return $(field === 'reasonCode' ? 'refund-reason-code' : `refund-${field}`);
}

// ---- merchant queue: oldest first, pending count, search by order number ----

function readQueueUrl(p) {
  state.sort = p.get('sort') === 'newest' ? 'newest' : 'oldest';
  state.search = p.get('q') ?? '';
}

function writeQueueUrl(p) {
  if (state.sort === 'newest') p.set('sort', 'newest');
  else p.delete('sort');
  if (state.search) p.set('q', state.search);
  else p.delete('q');
}

function listRefundsEvent() {
  // A search looks at every state of that order's refunds.
  if (state.search) return { orderId: state.search, order: state.sort };
  return { ...(state.view ? { status: state.view } : {}), order: state.sort };
}

function queueSummary(page) {
  return { pendingCount: page.pendingCount, sort: state.sort, search: state.search };
}

function renderQueueBar(q) {
  $('queue-pending').textContent = `待审核 ${q.pendingCount} 笔 · ${q.pendingCount} pending review`;
  $('queue-pending').dataset.count = String(q.pendingCount);
  $('queue-sort').textContent = q.sort === 'oldest' ? '最早优先 Oldest first' : '最新优先 Newest first';
  $('queue-sort').dataset.sort = q.sort;
  $('queue-search-clear').hidden = !q.search;
  if (document.activeElement !== $('queue-search')) $('queue-search').value = q.search;
}

function wireQueueBar() {
  const search = () => {
    const q = $('queue-search').value.trim();
    if (q && !/^[0-9A-Za-z_-]{1,32}$/.test(q)) {
      toast('订单号由字母、数字、- 和 _ 组成 · an order number is letters, digits, - and _', 'error');
      return;
    }
    state.search = q;
    state.rendered = {};
    writeUrl();
    void refresh();
  };
  $('queue-search-go').onclick = search;
  $('queue-search').onkeydown = (e) => {
    if (e.key === 'Enter') search();
  };
  $('queue-search-clear').onclick = () => {
    $('queue-search').value = '';
    search();
  };
  $('queue-sort').onclick = () => {
    state.sort = state.sort === 'oldest' ? 'newest' : 'oldest';
    state.rendered = {};
    writeUrl();
    void refresh();
  };
}

// ---- confirmation before what cannot be taken back ----

let confirming = null;

/** Opens the confirmation dialog; resolves true on its confirm button only. */
function confirmAction(title, content, confirm) {
  if (confirming) return Promise.resolve(false);
  $('confirm-title').textContent = both(title);
  $('confirm-text').textContent = both(content);
  $('confirm-ok').textContent = `${confirm.zh} ${confirm.en}`;
  $('confirm-ok').disabled = false;
  $('confirm-dialog').showModal();
  return new Promise((resolve) => {
    confirming = resolve;
  });
}

function wireConfirm() {
  const answer = (yes) => {
    const resolve = confirming;
    confirming = null;
    $('confirm-ok').disabled = true;
    $('confirm-dialog').close();
    resolve?.(yes);
  };
  $('confirm-ok').onclick = () => answer(true);
  $('confirm-cancel').onclick = () => answer(false);
  $('confirm-dialog').addEventListener('cancel', (e) => {
    e.preventDefault();
    answer(false);
  });
}

// ---- 服务通知: the identity's inbox, and its 接收通知 switch ----
// The switch answers WeChat's subscribe prompt as this user would (accept, at most 3 templates
// per prompt) through the emulator's control route, for the templates the mini-program asks
// this user for (noticeTemplates, called as them). One-time subscriptions: each acceptance lets
// one notice through. While the switch is on, a template whose acceptances are used up is
// accepted again, like a user who ticked 总是保持以上选择 and taps again.

const NOTICE_SWITCH_KEY = 'console.noticeSwitch';
const PROMPT_MAX = 3;

function noticeSwitches() {
  try {
    const v = JSON.parse(sessionStorage.getItem(NOTICE_SWITCH_KEY) ?? '{}');
    return v && typeof v === 'object' ? v : {};
  } catch {
    return {};
  }
}

function setNoticeSwitch(role, on) {
  const v = noticeSwitches();
  v[role] = on;
  try {
    sessionStorage.setItem(NOTICE_SWITCH_KEY, JSON.stringify(v));
  } catch {
    // A full or disabled storage only forgets the switch on reload.
  }
}

/** What the mini-program would ask this identity to accept; call while the page acts as `role`. */
async function noticeOffers(role) {
  state.noticeOffers ??= {};
  if (state.noticeOffers[role]) return state.noticeOffers[role];
  const t = await call('noticeTemplates');
  const offers = role === 'merchant' ? t.admin : t.shopper;
  // call() acts as the current identity: keep the answer only if that was still `role`.
  if (state.role === role) state.noticeOffers[role] = offers;
  return offers;
}

async function acceptNotices(role, offers) {
  for (let i = 0; i < offers.length; i += PROMPT_MAX) {
    const tmplIds = offers.slice(i, i + PROMPT_MAX).map((o) => o.templateId);
    await api('notices/subscribe', { openid: openidOf(role), tmplIds, answer: 'accept' });
  }
}

async function refreshNotices() {
  const role = state.role;
  const openid = openidOf(role);
  const offers = await noticeOffers(role);
  let view = await api('notices', { openid });
  const on = noticeSwitches()[role] === true;
  if (on) {
    const usedUp = offers.filter((o) => !(view.acceptances[o.templateId] > 0));
    if (usedUp.length > 0) {
      await acceptNotices(role, usedUp);
      view = await api('notices', { openid });
    }
  }
  // The identity changed while this was loading: its own refresh renders it.
  if (role !== state.role) return;
  renderIfChanged('notices', { on, offers, view }, renderNotices);
}

function noticeCard(m) {
  const [head, ...lines] = m.text.split('\n');
  return h(
    'div',
    {
      className: 'card notice-card',
      'data-testid': 'notice',
      'data-template-id': m.templateId,
      'data-title': m.title,
    },
    h('div', { className: 'row' }, h('b', {}, head), h('span', { className: 'muted' }, time(m.atMs))),
    h(
      'ul',
      { className: 'notice-lines' },
      lines.map((l) => h('li', { 'data-testid': 'notice-line' }, l)),
    ),
    m.page ? h('div', { className: 'muted mono id' }, `进入小程序 opens ${m.page}`) : null,
  );
}

function renderNotices({ on, offers, view }) {
  $('notices-owner').textContent = `openid ${view.openid}`;
  const sw = $('notices-switch');
  sw.checked = on;
  sw.disabled = offers.length === 0;
  const titles = Object.fromEntries(view.templates.map((t) => [t.id, t.title]));
  $('notices-acceptances').textContent =
    offers.length === 0
      ? '没有可订阅的模板 No templates configured (NOTICE_* variables).'
      : `剩余可接收 Acceptances left: ${offers
          .map(
            (o) =>
              `${titles[o.templateId] ?? o.templateId}（${o.title}）×${view.acceptances[o.templateId] ?? 0}`,
          )
          .join(' · ')}`;
  $('notices-inbox').replaceChildren(
    ...(view.inbox.length === 0
      ? [h('p', { className: 'muted' }, '还没有通知 No notices yet.')]
      : view.inbox.slice(0, 30).map(noticeCard)),
  );
}

function wireNotices() {
  $('notices-switch').onchange = (e) => {
    const role = state.role;
    const on = e.target.checked;
    setNoticeSwitch(role, on);
    // The refresh that follows accepts the templates: refreshes run one at a time, so a poll
    // cannot accept them a second time meanwhile.
    void act(null, async () => {
      toast(
        on
          ? '已开启通知 Notices on: each accepted template lets one notice through'
          : '不再接收新通知 No more acceptances; those left still let notices through',
      );
    });
  };
}

// ---- bill checks (对账): the merchant's list, a check run now, WeChat's clock, merchant-platform refunds ----

const billState = {
  /** WeChat's clock as the simulator last said: { nowMs, offsetMs }. */
  clock: null,
  /** The merchant picked a day: a clock change no longer moves it. */
  dateTouched: false,
  running: false,
};

/** yyyy-MM-dd (the date input's format) → yyyyMMdd (the bill's). */
const billDate = (day) => day.replaceAll('-', '');

function renderBillChecks(items) {
  if (items.length === 0) {
    $('billchecks').replaceChildren(h('p', { className: 'muted' }, '还没有对账记录 No bill checks yet.'));
    return;
  }
  $('billchecks').replaceChildren(
    ...items.map((v) => {
      const row = billCheckRow(v);
      return h(
        'div',
        {
          className: `card billcheck ${row.clean ? 'clean' : 'attention'}`,
          'data-testid': 'billcheck',
          'data-date': row.billDate,
          'data-status': row.status,
          'data-clean': String(row.clean),
        },
        h(
          'div',
          { className: 'row' },
          h('b', {}, row.day),
          h(
            'span',
            { className: 'badge billcheck-status', 'data-testid': 'billcheck-status' },
            row.statusLabel,
          ),
          h('span', { className: 'muted' }, `${v.status}${v.runs > 1 ? ` · ${v.runs} runs` : ''}`),
        ),
        h('div', { 'data-testid': 'billcheck-summary' }, row.summary),
        row.message ? h('div', { className: 'error' }, row.message) : null,
        row.fixes.length > 0
          ? h(
              'ul',
              { className: 'billcheck-list' },
              row.fixes.map((f, i) =>
                h(
                  'li',
                  { 'data-testid': 'billcheck-fix', 'data-kind': v.actions[i]?.kind ?? '' },
                  `✓ ${f.label} · `,
                  h('span', { className: 'mono id' }, f.orderId),
                  f.refundId ? [' · ', h('span', { className: 'mono id' }, f.refundId)] : null,
                  ` · ¥${f.yuan}`,
                ),
              ),
            )
          : null,
        row.issues.length > 0
          ? h(
              'ul',
              { className: 'billcheck-list' },
              row.issues.map((d, i) =>
                h(
                  'li',
                  {
                    className: 'billcheck-issue',
                    'data-testid': 'billcheck-issue',
                    'data-kind': v.discrepancies[i]?.kind ?? '',
                  },
                  h('b', {}, `⚠ ${d.title}`),
                  h('span', { className: 'muted' }, ` · ${v.discrepancies[i]?.kind ?? ''}`),
                  d.ids ? h('div', { className: 'mono id' }, d.ids) : null,
                  d.detail ? h('div', { className: 'muted' }, d.detail) : null,
                  h('div', { className: 'guide', 'data-testid': 'billcheck-todo' }, `处理 To do: ${d.todo}`),
                ),
              ),
            )
          : null,
        row.moreIssues > 0
          ? h(
              'div',
              { className: 'muted' },
              `另有 ${row.moreIssues} 项差异未列出 ${row.moreIssues} more in the log (billcheck.discrepancy)`,
            )
          : null,
        h('div', { className: 'muted' }, `最近核对 Last run ${row.lastRunAt}`),
      );
    }),
  );
}

async function refreshBillChecks() {
  const page = await call('listBillChecks', {});
  renderIfChanged('billchecks', page.items, renderBillChecks);
}

function renderClock(clock) {
  billState.clock = clock;
  const ahead = Math.round(clock.offsetMs / 60_000);
  $('wx-clock').textContent =
    `${new Date(clock.nowMs).toLocaleString('zh-CN', { hour12: false, timeZone: 'Asia/Shanghai' })}` +
    (Math.abs(ahead) >= 1 ? ` (+${ahead} min)` : '');
  $('wx-clock').dataset.offsetMs = String(clock.offsetMs);
  // The day the morning check looks at, on WeChat's clock: the one whose bill now exists.
  if (!billState.dateTouched) $('billcheck-date').value = yesterdayBeijing(clock.nowMs);
}

async function runBillCheck(button) {
  const day = $('billcheck-date').value;
  if (!day || billState.running) return;
  billState.running = true;
  await act(button, async () => {
    try {
      const out = await api('billcheck', { date: billDate(day) });
      const answer = out.result;
      if (!answer?.ok) throw new CallFailed(answer?.error?.code ?? 'INTERNAL', answer?.error?.message);
      const row = billCheckRow(answer.data.check);
      toast(
        answer.data.ran
          ? `${row.day} ${row.statusLabel} · ${answer.data.check.status}`
          : `${row.day} 正在对账中 A check of this day is running`,
      );
    } finally {
      billState.running = false;
    }
  });
}

function wireBillChecks() {
  $('billcheck-date').onchange = () => {
    billState.dateTouched = true;
  };
  $('billcheck-run').onclick = (e) => runBillCheck(e.currentTarget);
  const setClock = (body, what) =>
    act(null, async () => {
      renderClock(await api('clock', body));
      toast(what);
    });
  $('clock-next-morning').onclick = () =>
    setClock({ nextMorning: true }, '微信时钟已到次日 10:30 WeChat is at 10:30 the next day');
  $('clock-now').onclick = () => setClock({ offsetMs: 0 }, '微信时钟回到现在 WeChat is back to now');
  $('platform-refund').addEventListener('submit', (e) => {
    e.preventDefault();
    const outTradeNo = $('platform-refund-order').value.trim();
    const yuan = parseYuanToFen($('platform-refund-amount').value);
    if (!outTradeNo || !yuan.ok) {
      toast('填写订单号和金额 Give the order number and an amount in yuan', 'error');
      return;
    }
    void act(e.submitter, async () => {
      const r = await api('platform-refund', { outTradeNo, refundFee: yuan.fen });
      $('platform-refund-order').value = '';
      $('platform-refund-amount').value = '';
      toast(`商户平台退款 ${r.outRefundNo} · ${r.status}（无通知 no notify; only the bill shows it）`);
    });
  });
}

// ---- polling ----

/**
 * Replaces a section only when its data changed. Whatever the user was typing in it keeps
 * its focus and caret: the value itself lives in state and is rendered back.
 */
function renderIfChanged(key, data, render) {
  const json = JSON.stringify(data);
  if (state.rendered[key] === json) return;
  state.rendered[key] = json;
  const active = document.activeElement;
  const focusKey = active?.dataset?.focusKey;
  const caret = focusKey ? [active.selectionStart, active.selectionEnd] : null;
  render(data);
  if (!focusKey) return;
  const again = document.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
  if (!again) return;
  again.focus();
  again.setSelectionRange(caret[0], caret[1]);
}

let chain = Promise.resolve();
let queued = 0;
/** Refreshes run one after another, so a click's refresh always sees the click's effect. */
function refresh() {
  queued++;
  chain = chain.then(async () => {
    try {
      await Promise.all([
        isMerchant() ? refreshMerchant() : refreshShop(),
        refreshNotices(),
        isMerchant() ? refreshBillChecks() : null,
        api('notifies').then((n) => renderIfChanged('notifies', n, renderNotifies)),
        api('faults').then((f) => renderIfChanged('faults', f, renderFaults)),
        api('clock').then(renderClock),
      ]);
      document.body.dataset.ready = 'true';
    } catch (e) {
      toast(describe(e), 'error');
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
  wireNotices();
  wireBillChecks();
  $('cashier').addEventListener('click', cashierChoice);
  $('cashier').addEventListener('cancel', (e) => {
    if (state.paying) e.preventDefault();
  });
  $('refund-dialog').addEventListener('cancel', (e) => {
    if (state.applying) e.preventDefault();
  });
  $('refund-form').addEventListener('submit', submitRefund);
  wireConfirm();
  wireQueueBar();
  readUrl();
  switchTo(state.role, state.view);
  // A poll is skipped while another refresh is queued, so a slow stack is not flooded.
  setInterval(() => {
    if (!document.hidden && queued === 0) void refresh();
  }, POLL_MS);
}

void main();
