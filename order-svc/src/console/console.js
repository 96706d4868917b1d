// The orders console: plain DOM and EventSource, nothing to build or fetch from elsewhere.
// Everything it shows comes from order-svc's public routes and each service's /ready.
"use strict";

const RECENT = 100;
const READY_EVERY_MS = 5000;
const STUCK_EVERY_MS = 10000;

const $ = (id) => document.getElementById(id);

const state = {
  orders: new Map(), // order_id -> the last view received
  ordersStream: null,
  detailId: null,
  detailStream: null,
  timeline: new Map(), // event_id -> entry, for the open order
};

// Text only: every value from the server goes in as text, never as markup.
function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function money(cents, currency) {
  if (typeof cents !== "number") return "";
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")} ${currency || ""}`.trim();
}

function time(millis) {
  return typeof millis === "number" ? new Date(millis).toLocaleTimeString() : "";
}

function duration(millis) {
  const seconds = Math.round(millis / 1000);
  return seconds < 120 ? `${seconds} s` : `${Math.round(seconds / 60)} min`;
}

function statusBadge(td, status) {
  td.classList.add("status", `status-${String(status).toLowerCase()}`);
}

// --- Recent orders, live over GET /orders/events -------------------------------------------

function filters() {
  return { status: $("filter-status").value, customer: $("filter-customer").value.trim() };
}

function followOrders() {
  if (state.ordersStream) state.ordersStream.close();
  state.orders.clear();
  renderOrders();
  const { customer } = filters();
  const query = customer ? `customer_id=${encodeURIComponent(customer)}` : `limit=${RECENT}`;
  const stream = new EventSource(`/orders/events?${query}`);
  state.ordersStream = stream;
  stream.addEventListener("open", () => setText("stream-state", "live"));
  stream.addEventListener("error", () => setText("stream-state", "reconnecting…"));
  stream.addEventListener("view", (message) => {
    const view = JSON.parse(message.data);
    state.orders.set(view.order_id, view);
    renderOrders();
    if (view.order_id === state.detailId) renderFacts(view);
  });
}

function renderOrders() {
  const { status } = filters();
  const body = $("orders").tBodies[0];
  const shown = [...state.orders.values()]
    .filter((view) => !status || view.status === status)
    .sort((a, b) => b.created_at - a.created_at || (a.order_id < b.order_id ? 1 : -1))
    .slice(0, RECENT);
  body.replaceChildren(
    ...shown.map((view) => {
      const row = document.createElement("tr");
      row.dataset.orderId = view.order_id;
      row.tabIndex = 0;
      if (view.order_id === state.detailId) row.classList.add("selected");
      cell(row, view.order_id, "id");
      cell(row, view.customer_id);
      statusBadge(cell(row, view.status), view.status);
      cell(row, money(view.total_cents, view.currency), "number");
      cell(row, time(view.updated_at));
      return row;
    }),
  );
  $("orders-empty").hidden = shown.length > 0;
}

// --- One order: its view and its timeline, live over GET /orders/{id}/events ----------------

function openOrder(orderId) {
  if (state.detailStream) state.detailStream.close();
  state.detailId = orderId;
  state.timeline.clear();
  $("detail").hidden = false;
  setText("detail-order-id", orderId);
  renderTimeline();
  renderOrders();
  followDetail(orderId, 0);
}

// An order just placed is not in the view for a moment (404), and a restarting order-svc
// answers nothing: EventSource gives up on both, so the console tries again itself.
const DETAIL_RETRY_MS = 1000;
const DETAIL_RETRIES = 30;

function followDetail(orderId, attempt) {
  const stream = new EventSource(`/orders/${encodeURIComponent(orderId)}/events`);
  state.detailStream = stream;
  let ended = false;
  stream.addEventListener("open", () => {
    attempt = 0;
    setText("detail-stream-state", "live");
  });
  stream.addEventListener("view", (message) => renderFacts(JSON.parse(message.data)));
  stream.addEventListener("timeline", (message) => {
    const entry = JSON.parse(message.data);
    state.timeline.set(entry.event_id, entry);
    renderTimeline();
  });
  stream.addEventListener("end", () => {
    // The order is final: nothing more will come, and EventSource must not reconnect.
    ended = true;
    stream.close();
    setText("detail-stream-state", "complete");
  });
  stream.addEventListener("error", () => {
    if (stream.readyState !== EventSource.CLOSED) {
      setText("detail-stream-state", "reconnecting…");
      return;
    }
    if (ended || state.detailStream !== stream) return;
    if (attempt >= DETAIL_RETRIES) {
      setText("detail-stream-state", "not found");
      return;
    }
    setText("detail-stream-state", "waiting for the order…");
    // The timeline so far stays; the stream sends it again from the start and entries are
    // kept by event id, so nothing shows twice.
    setTimeout(() => {
      if (state.detailId === orderId && state.detailStream === stream) followDetail(orderId, attempt + 1);
    }, DETAIL_RETRY_MS);
  });
}

function renderFacts(view) {
  const status = $("detail-status");
  status.className = "";
  status.textContent = view.status + (view.cancellation_reason ? ` (${view.cancellation_reason})` : "");
  statusBadge(status, view.status);
  setText("detail-customer", view.customer_id);
  setText("detail-total", money(view.total_cents, view.currency));
  setText("detail-payment", view.payment ? `${view.payment.status} ${money(view.payment.amount_cents, view.currency)}` : "—");
  const shipment = view.shipment;
  const tracking = shipment && shipment.tracking ? `, ${shipment.tracking.status} at ${shipment.tracking.location}` : "";
  setText("detail-shipment", shipment ? `${shipment.status} ${shipment.carrier || ""} ${shipment.tracking_number || ""}${tracking}`.replace(/\s+/g, " ") : "—");
  setText("detail-notifications", view.notifications && view.notifications.length ? view.notifications.join(", ") : "—");
}

function renderTimeline() {
  const entries = [...state.timeline.values()].sort((a, b) => a.occurred_at - b.occurred_at || a.version - b.version);
  $("timeline").tBodies[0].replaceChildren(
    ...entries.map((entry) => {
      const row = document.createElement("tr");
      row.dataset.eventType = entry.type;
      row.dataset.topic = entry.topic;
      cell(row, time(entry.occurred_at));
      cell(row, entry.service);
      cell(row, entry.type);
      cell(row, `${entry.topic} ${entry.aggregate_id}`, "id");
      cell(row, entry.version, "number");
      return row;
    }),
  );
}

// --- Place a test order (POST /orders) -------------------------------------------------------

async function placeOrder(event) {
  event.preventDefault();
  const value = (id) => $(id).value.trim();
  const body = {
    customer_id: value("place-customer"),
    currency: value("place-currency").toUpperCase(),
    lines: [{ sku: value("place-sku"), quantity: Number(value("place-quantity")), unit_price_cents: Number(value("place-price")) }],
    shipping_address: {
      name: value("place-name"),
      street: value("place-street"),
      city: value("place-city"),
      postal_code: value("place-postal"),
      country: value("place-country").toUpperCase(),
    },
  };
  const result = $("place-result");
  result.className = "";
  result.textContent = "placing…";
  try {
    const response = await fetch("/orders", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      result.className = "error";
      result.textContent = `refused (${response.status}): ${answer.error || response.statusText}`;
      return;
    }
    result.textContent = "placed ";
    const id = document.createElement("code");
    id.id = "placed-order-id";
    id.textContent = answer.order_id;
    result.appendChild(id);
    openOrder(answer.order_id);
  } catch (error) {
    result.className = "error";
    result.textContent = `order-svc did not answer: ${error}`;
  }
}

// --- Stuck sagas (GET /sagas/stuck) ----------------------------------------------------------

async function refreshStuck() {
  try {
    const response = await fetch("/sagas/stuck?older_than=30s");
    if (!response.ok) return;
    const report = await response.json();
    const rows = report.orders.map((order) => {
      const row = document.createElement("tr");
      row.dataset.orderId = order.order_id;
      row.tabIndex = 0;
      cell(row, order.order_id, "id");
      statusBadge(cell(row, order.status), order.status);
      cell(row, `${order.waiting_on}: ${order.step}`);
      cell(row, duration(order.age_ms), "number");
      return row;
    });
    $("stuck").tBodies[0].replaceChildren(...rows);
    $("stuck-empty").hidden = rows.length > 0;
  } catch {
    // order-svc is restarting; the next round tries again.
  }
}

// --- Every service's readiness and lag (GET /ready of each) ----------------------------------

let services = [];

async function loadServices() {
  const response = await fetch("/console/services");
  services = await response.json();
  $("services").replaceChildren(
    ...services.map((service) => {
      const item = document.createElement("li");
      item.dataset.service = service.name;
      item.className = "service unknown";
      item.textContent = service.name;
      return item;
    }),
  );
}

function baseUrl(service) {
  return service.url || `${location.protocol}//${location.hostname}:${service.port}`;
}

async function refreshReadiness() {
  await Promise.all(
    services.map(async (service) => {
      const item = document.querySelector(`#services li[data-service="${service.name}"]`);
      if (!item) return;
      try {
        const response = await fetch(`${baseUrl(service)}/ready`, { cache: "no-store" });
        const ready = await response.json();
        const lag = Object.values(ready.lag || {}).reduce((sum, n) => sum + n, 0);
        item.className = `service ${response.ok ? "ready" : "not-ready"}`;
        item.dataset.lag = String(lag);
        item.textContent = `${service.name} · lag ${lag}`;
        item.title = response.ok ? "ready" : JSON.stringify(ready.not_ready);
      } catch {
        item.className = "service down";
        item.textContent = `${service.name} · no answer`;
        item.title = "";
      }
    }),
  );
}

function setText(id, text) {
  $(id).textContent = text == null ? "" : String(text);
}

function rowOpener(event) {
  const row = event.target.closest("tr[data-order-id]");
  if (!row) return;
  if (event.type === "keydown" && event.key !== "Enter") return;
  openOrder(row.dataset.orderId);
}

document.addEventListener("DOMContentLoaded", async () => {
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    followOrders();
  });
  $("filter-status").addEventListener("change", renderOrders);
  $("place-order").addEventListener("submit", placeOrder);
  for (const table of ["orders", "stuck"]) {
    $(table).addEventListener("click", rowOpener);
    $(table).addEventListener("keydown", rowOpener);
  }
  followOrders();
  refreshStuck();
  setInterval(refreshStuck, STUCK_EVERY_MS);
  try {
    await loadServices();
    refreshReadiness();
    setInterval(refreshReadiness, READY_EVERY_MS);
  } catch {
    $("services").textContent = "services unknown";
  }
});
