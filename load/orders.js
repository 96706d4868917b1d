// k6 load test of the order saga: POST /orders at a constant arrival rate, then wait for each
// order to reach CONFIRMED or CANCELLED (GET /orders/{id}?wait_for=...). Run it through
// scripts/load.sh, which passes the service addresses (the running instances of up.sh's layout,
// run/instances.tsv) and the options below.
//
// Environment (all optional except the base URLs, which load.sh sets):
//   ORDER_URL, INVENTORY_URL, PAYMENT_URL   e.g. http://127.0.0.1:8001, or a comma-separated
//                      list of a service's instances (http://127.0.0.1:8001,http://127.0.0.1:8101):
//                      iteration i places its order on order instance i and waits for it on
//                      instance i+1 (every instance's read models cover all partitions, so
//                      an order is visible on any of them); restocks and deposits go round-robin
//                      and are waited for on every instance
//   RATE               orders per minute (600)
//   DURATION           k6 duration string (1m)
//   SHARE_OUT_OF_STOCK, SHARE_DECLINED, SHARE_UNSERVICEABLE   fractions of the orders (0.03, 0.03, 0.02);
//                      the rest are happy-path orders
//   TARGET_MS          the "terminal within" bound of the thresholds (5000)
//   WAIT_BUDGET_MS     how long one iteration waits for its order before giving up (30000)
//   CUSTOMERS, SKUS    size of the seeded pools (200, 50)
//   MAX_LINES          lines per happy order, 1..MAX_LINES (2)
//   RUN_ID             unique per run (load.sh passes the run folder's timestamp); ids derive from it
//   SUMMARY_JSON       where handleSummary writes the JSON summary (summary.json)
//   PRE_VUS, MAX_VUS   k6 VU pool (derived from RATE and WAIT_BUDGET_MS)
//   SEED_ONLY=1        only seed stock and funds for RUN_ID and wait until visible (no orders)
//   SEEDED=1           skip seeding (a SEED_ONLY run with the same RUN_ID did it), so the
//                      measured run is the orders alone
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import exec from 'k6/execution';

const env = (name, dflt) => (__ENV[name] === undefined || __ENV[name] === '' ? dflt : __ENV[name]);
const num = (name, dflt) => Number(env(name, dflt));

const urlList = (name, dflt) =>
  env(name, dflt)
    .split(',')
    .map((u) => u.trim().replace(/\/+$/, ''))
    .filter((u) => u !== '');
const ORDER_URLS = urlList('ORDER_URL', 'http://127.0.0.1:8001');
const INVENTORY_URLS = urlList('INVENTORY_URL', 'http://127.0.0.1:8002');
const PAYMENT_URLS = urlList('PAYMENT_URL', 'http://127.0.0.1:8003');
for (const [name, list] of [['ORDER_URL', ORDER_URLS], ['INVENTORY_URL', INVENTORY_URLS], ['PAYMENT_URL', PAYMENT_URLS]]) {
  if (list.length === 0) throw new Error(`${name} names no URL`);
}
// The n-th of a list of instances, round-robin.
const nth = (list, n) => list[n % list.length];
const RATE = Math.max(1, Math.round(num('RATE', 600)));
const DURATION = env('DURATION', '1m');
const SHARE_OOS = num('SHARE_OUT_OF_STOCK', 0.03);
const SHARE_DECLINED = num('SHARE_DECLINED', 0.03);
const SHARE_UNSERVICEABLE = num('SHARE_UNSERVICEABLE', 0.02);
const TARGET_MS = num('TARGET_MS', 5000);
const WAIT_BUDGET_MS = num('WAIT_BUDGET_MS', 30000);
const CUSTOMERS = Math.max(1, num('CUSTOMERS', 200));
const SKUS = Math.max(1, num('SKUS', 50));
const MAX_LINES = Math.max(1, Math.min(num('MAX_LINES', 2), SKUS));
const RUN_ID = env('RUN_ID', `${Date.now()}`);
const SUMMARY_JSON = env('SUMMARY_JSON', 'summary.json');
const SEED_ONLY = env('SEED_ONLY', '0') === '1';
const SEEDED = env('SEEDED', '0') === '1';

// k6 duration string ("90s", "1m30s", "2m") in seconds.
function durationSeconds(d) {
  let total = 0;
  const re = /([\d.]+)(ms|h|m|s)/g;
  let m;
  while ((m = re.exec(d)) !== null) total += Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]];
  return total || Number(d);
}

const perSecond = RATE / 60;
const PRE_VUS = Math.ceil(num('PRE_VUS', Math.min(2000, Math.max(20, perSecond * 8))));
const MAX_VUS = Math.ceil(num('MAX_VUS', Math.max(PRE_VUS, Math.min(4000, perSecond * (WAIT_BUDGET_MS / 1000 + 3)))));

// Ids of this run: unique SKUs and customers, so runs never share stock or money.
const P = `lt${RUN_ID}`;
const skuId = (i) => `${P}-sku-${i}`;
const OOS_SKU = `${P}-sku-scarce`; // 1 unit on hand; orders ask for 2
const customerId = (i) => `${P}-c-${i}`;
const POOR_CUSTOMER = `${P}-c-poor`; // 1 cent on the account
const HAPPY_STOCK = 1000000; // MAX_RESTOCK_QUANTITY
const HAPPY_FUNDS = 1000000000000; // MAX_DEPOSIT_CENTS
// Countries: served ones (shipping-svc's default SHIPPING_COUNTRIES) and valid ISO codes it does not serve.
const SERVED = ['DE', 'AT', 'FR', 'NL', 'IT', 'ES', 'SE', 'GB', 'US', 'CA'];
const UNSERVED = ['JP', 'BR', 'AU', 'ZA', 'MX'];

const seedOptions = {
  scenarios: { seed: { executor: 'shared-iterations', vus: 1, iterations: 1 } },
  setupTimeout: '300s',
};

export const options = SEED_ONLY ? seedOptions : {
  scenarios: {
    orders: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1m',
      duration: DURATION,
      preAllocatedVUs: PRE_VUS,
      maxVUs: MAX_VUS,
      gracefulStop: `${Math.ceil(WAIT_BUDGET_MS / 1000) + 15}s`,
    },
  },
  setupTimeout: '300s',
  discardResponseBodies: false,
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
  thresholds: {
    order_place_to_terminal: [`p(99)<=${TARGET_MS}`],
    order_terminal_within_target: ['rate>=0.99'],
    http_req_failed: ['rate<=0'],
    // An arrival rate k6 could not offer (no free VU, or k6 itself starved of CPU) has not
    // held either; 1 % slack for k6's own scheduling hiccups on a busy box.
    dropped_iterations: [`count<=${Math.ceil(RATE * (durationSeconds(DURATION) / 60) * 0.01)}`],
  },
};

const placeToTerminal = new Trend('order_place_to_terminal', true);
const withinTarget = new Rate('order_terminal_within_target');
const placed = new Counter('orders_placed');
const confirmed = new Counter('orders_confirmed');
const cancelled = new Counter('orders_cancelled');
const notTerminal = new Counter('orders_not_terminal');
const reasonCounters = {
  OUT_OF_STOCK: new Counter('cancelled_out_of_stock'),
  PAYMENT_DECLINED: new Counter('cancelled_payment_declined'),
  SHIPPING_UNAVAILABLE: new Counter('cancelled_shipping_unavailable'),
  CUSTOMER_REQUEST: new Counter('cancelled_customer_request'),
};
const otherReason = new Counter('cancelled_other_reason');
const unexpected = new Counter('orders_unexpected_outcome');
const postFailed = new Counter('orders_post_failed');

// `scripts/up.sh --secure`: writes need the bearer token (scripts/load.sh exports API_TOKEN).
const AUTH = env('API_TOKEN', '') ? { authorization: `Bearer ${env('API_TOKEN', '')}` } : {};
const JSON_HEADERS = { headers: { 'content-type': 'application/json', ...AUTH } };

// Runs `requests` (http.batch form) in chunks; fails the setup on any non-2xx.
function batchAll(requests, what) {
  for (let i = 0; i < requests.length; i += 50) {
    const responses = http.batch(requests.slice(i, i + 50));
    responses.forEach((r, j) => {
      if (r.status < 200 || r.status >= 300) {
        throw new Error(`${what}: ${requests[i + j][1]} -> ${r.status} ${r.body}`);
      }
    });
  }
}

// Polls GET urls until every answer satisfies ok(json), or the deadline.
function waitVisible(urls, ok, what, deadlineMs) {
  let pending = urls.slice();
  while (pending.length > 0) {
    const still = [];
    for (let i = 0; i < pending.length; i += 50) {
      const chunk = pending.slice(i, i + 50);
      const responses = http.batch(chunk.map((u) => ['GET', u, null, { headers: AUTH, responseCallback: http.expectedStatuses(200, 404) }]));
      responses.forEach((r, j) => {
        let good = false;
        if (r.status === 200) {
          try {
            good = ok(r.json());
          } catch (e) {
            good = false;
          }
        }
        if (!good) still.push(chunk[j]);
      });
    }
    pending = still;
    if (pending.length === 0) break;
    if (Date.now() > deadlineMs) throw new Error(`${what}: ${pending.length} still not visible, e.g. ${pending[0]}`);
    sleep(0.5);
  }
}

export function setup() {
  if (SEEDED) return {};
  const started = Date.now();
  const skus = [];
  for (let i = 0; i < SKUS; i++) skus.push(skuId(i));
  const customers = [];
  for (let i = 0; i < CUSTOMERS; i++) customers.push(customerId(i));

  const restock = (sku, quantity, n) => [
    'POST',
    `${nth(INVENTORY_URLS, n)}/stock/${encodeURIComponent(sku)}/restock`,
    JSON.stringify({ quantity }),
    JSON_HEADERS,
  ];
  const deposit = (c, amount, n) => [
    'POST',
    `${nth(PAYMENT_URLS, n)}/accounts/${encodeURIComponent(c)}/deposits`,
    JSON.stringify({ amount_cents: amount, currency: 'EUR' }),
    JSON_HEADERS,
  ];
  batchAll(skus.map((s, n) => restock(s, HAPPY_STOCK, n)).concat([restock(OOS_SKU, 1, skus.length)]), 'restock');
  batchAll(customers.map((c, n) => deposit(c, HAPPY_FUNDS, n)).concat([deposit(POOR_CUSTOMER, 1, customers.length)]), 'deposit');

  // On every instance: each builds its own read models, and the seeds count as visible once
  // all of them show them.
  const everywhere = (bases, path) => bases.map((base) => `${base}${path}`);
  const deadline = Date.now() + 240000;
  waitVisible(
    skus.concat([OOS_SKU]).flatMap((s) => everywhere(INVENTORY_URLS, `/stock/${encodeURIComponent(s)}`)),
    (j) => j.on_hand >= 1,
    'stock',
    deadline,
  );
  waitVisible(
    customers.concat([POOR_CUSTOMER]).flatMap((c) => everywhere(PAYMENT_URLS, `/accounts/${encodeURIComponent(c)}`)),
    (j) => j.balance_cents >= 1,
    'funds',
    deadline,
  );
  console.log(`seeded ${SKUS + 1} SKUs and ${CUSTOMERS + 1} customers (run ${RUN_ID}) in ${Date.now() - started} ms`);
  return { seededMs: Date.now() - started };
}

const pick = (arr) => arr[Math.floor(Math.random() * arr.length)];

function address(country) {
  return { name: 'Load Test', street: 'Main 1', city: 'Berlin', postal_code: '10115', country };
}

// One order of a kind: happy | out_of_stock | declined | unserviceable.
function newOrder() {
  const r = Math.random();
  let kind = 'happy';
  if (r < SHARE_OOS) kind = 'out_of_stock';
  else if (r < SHARE_OOS + SHARE_DECLINED) kind = 'declined';
  else if (r < SHARE_OOS + SHARE_DECLINED + SHARE_UNSERVICEABLE) kind = 'unserviceable';

  const n = 1 + Math.floor(Math.random() * MAX_LINES);
  const start = Math.floor(Math.random() * SKUS);
  const lines = [];
  for (let i = 0; i < n; i++) {
    lines.push({ sku: skuId((start + i) % SKUS), quantity: 1 + Math.floor(Math.random() * 2), unit_price_cents: 100 + Math.floor(Math.random() * 5000) });
  }
  let customer = customerId(Math.floor(Math.random() * CUSTOMERS));
  let country = pick(SERVED);
  if (kind === 'out_of_stock') lines.splice(0, lines.length, { sku: OOS_SKU, quantity: 2, unit_price_cents: 999 });
  if (kind === 'declined') customer = POOR_CUSTOMER;
  if (kind === 'unserviceable') country = pick(UNSERVED);
  const expected = {
    happy: ['CONFIRMED', null],
    out_of_stock: ['CANCELLED', 'OUT_OF_STOCK'],
    declined: ['CANCELLED', 'PAYMENT_DECLINED'],
    unserviceable: ['CANCELLED', 'SHIPPING_UNAVAILABLE'],
  }[kind];
  return { kind, expected, body: { customer_id: customer, currency: 'EUR', lines, shipping_address: address(country) } };
}

const TERMINAL = ['CONFIRMED', 'CANCELLED'];

export default function () {
  if (SEED_ONLY) return;
  const order = newOrder();
  const iteration = exec.scenario.iterationInTest;
  const placeUrl = nth(ORDER_URLS, iteration);
  const readUrl = nth(ORDER_URLS, iteration + 1);
  const t0 = Date.now();
  const res = http.post(`${placeUrl}/orders`, JSON.stringify(order.body), {
    headers: { 'content-type': 'application/json', ...AUTH },
    tags: { name: 'POST /orders' },
    timeout: '30s',
  });
  if (!check(res, { 'POST /orders 202': (r) => r.status === 202 })) {
    postFailed.add(1);
    return;
  }
  placed.add(1, { kind: order.kind });
  const orderId = res.json('order_id');

  let view = null;
  while (true) {
    const remaining = WAIT_BUDGET_MS - (Date.now() - t0);
    if (remaining <= 0) break;
    const waitMs = Math.min(remaining, 60000);
    // 404 = not visible yet when the wait ran out: not an HTTP error.
    const r = http.get(`${readUrl}/orders/${orderId}?wait_for=CONFIRMED,CANCELLED&timeout_ms=${waitMs}`, {
      headers: AUTH,
      tags: { name: 'GET /orders/{id}?wait_for' },
      timeout: `${Math.ceil(waitMs / 1000) + 15}s`,
      responseCallback: http.expectedStatuses(200, 404),
    });
    if (r.status === 200) {
      view = r.json();
      if (TERMINAL.includes(view.status)) break;
    } else if (r.status !== 404) {
      break;
    } else {
      sleep(0.05);
    }
  }
  const latency = Date.now() - t0;
  const terminal = view !== null && TERMINAL.includes(view.status);
  if (!terminal) {
    notTerminal.add(1);
    withinTarget.add(false);
    placeToTerminal.add(latency); // a lower bound: the order never settled within the budget
    return;
  }
  placeToTerminal.add(latency, { status: view.status });
  withinTarget.add(latency <= TARGET_MS);
  if (view.status === 'CONFIRMED') {
    confirmed.add(1);
  } else {
    cancelled.add(1);
    (reasonCounters[view.cancellation_reason] || otherReason).add(1);
  }
  if (view.status !== order.expected[0] || (order.expected[1] !== null && view.cancellation_reason !== order.expected[1])) {
    unexpected.add(1);
    if (exec.scenario.iterationInTest < 20) {
      console.warn(`order ${orderId} (${order.kind}) ended ${view.status}/${view.cancellation_reason}, expected ${order.expected.join('/')}`);
    }
  }
}

export function handleSummary(data) {
  if (SEED_ONLY) return { stdout: '' };
  const m = (name, field) => (data.metrics[name] && data.metrics[name].values ? data.metrics[name].values[field] : undefined);
  const line =
    `k6: placed ${m('orders_placed', 'count') || 0}, confirmed ${m('orders_confirmed', 'count') || 0}, ` +
    `cancelled ${m('orders_cancelled', 'count') || 0}, not terminal ${m('orders_not_terminal', 'count') || 0}, ` +
    `p99 ${Math.round(m('order_place_to_terminal', 'p(99)') || 0)} ms\n`;
  const out = { stdout: line };
  out[SUMMARY_JSON] = JSON.stringify(
    Object.assign({}, data, {
      orderflow: {
        rate_per_min: RATE,
        duration: DURATION,
        target_ms: TARGET_MS,
        wait_budget_ms: WAIT_BUDGET_MS,
        shares: { out_of_stock: SHARE_OOS, declined: SHARE_DECLINED, unserviceable: SHARE_UNSERVICEABLE },
        run_id: RUN_ID,
        vus: { pre: PRE_VUS, max: MAX_VUS },
      },
    }),
    null,
    1,
  );
  return out;
}
