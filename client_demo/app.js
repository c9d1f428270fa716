// The demo page: renders the one state of PgBellClient and routes itself,
// so it works when loaded at / or at a notification's /deals/{id}.

import { PgBellClient } from "/static/pgbell-client.js";

const $ = (id) => document.getElementById(id);
const client = new PgBellClient();
const TOAST_MS = 6000;
const MAX_TOASTS = 4;
const STATUS_LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  polling: "Polling (WebSocket unavailable)",
  offline: "Offline",
};
const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2 });
const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
let unreadOnly = false;

// ---- views ----------------------------------------------------------------

function showLogin(message = "") {
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message;
  $("login-error").hidden = !message;
  $("login-password").value = "";
  $("login-username").focus();
}

function showApp() {
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("whoami").textContent = client.state.user?.username ?? "";
  route();
}

function render(state) {
  const status = $("connection-status");
  status.dataset.state = state.status;
  $("connection-label").textContent = STATUS_LABELS[state.status] ?? state.status;

  const badge = $("unread-count");
  badge.textContent = String(state.unreadCount);
  badge.classList.toggle("badge-zero", state.unreadCount === 0);
  $("mark-all-read").disabled = state.unreadCount === 0;

  const items = unreadOnly ? state.notifications.filter((n) => !n.read_at) : state.notifications;
  $("notification-list").replaceChildren(...items.map(renderItem));
  $("empty").hidden = items.length > 0;
}

function renderItem(n) {
  const li = document.createElement("li");
  li.className = `note note-${n.priority}`;
  li.dataset.testid = "notification-item";
  li.dataset.id = String(n.id);
  li.dataset.priority = n.priority;
  li.dataset.read = n.read_at ? "true" : "false";

  const href = client.actionUrl(n); // this origin only: anything else is shown, not followed
  const link = document.createElement(href ? "a" : "button");
  link.className = "note-link";
  if (href) link.href = href;
  else link.type = "button";
  link.addEventListener("click", (e) => openNotification(e, n));

  const head = document.createElement("span");
  head.className = "note-head";
  const title = document.createElement("span");
  title.className = "note-title";
  title.textContent = n.title;
  const tag = document.createElement("span");
  tag.className = `tag tag-${n.priority}`;
  tag.textContent = n.priority;
  head.append(title, tag);

  const body = document.createElement("span");
  body.className = "note-body";
  body.textContent = n.body;

  const meta = document.createElement("span");
  meta.className = "note-meta";
  meta.textContent = `${n.read_at ? "" : "● "}${when.format(new Date(n.created_at))}`;
  if (!n.read_at) meta.setAttribute("aria-label", `unread, ${meta.textContent.slice(2)}`);

  link.append(head, body, meta);
  li.append(link);
  return li;
}

function openNotification(event, n) {
  event.preventDefault();
  client.markRead(n.id).catch((err) => notice(`Could not mark it read: ${err.message}`));
  const href = client.actionUrl(n);
  if (href) navigate(href);
}

// ---- toasts ---------------------------------------------------------------

function toast(n) {
  const el = document.createElement("div");
  el.className = `toast toast-${n.priority}`;
  el.dataset.testid = "toast";
  el.dataset.priority = n.priority;
  el.dataset.id = String(n.id);
  if (n.priority === "urgent") el.setAttribute("role", "alert");

  const href = client.actionUrl(n);
  const text = document.createElement(href ? "a" : "div");
  text.className = "toast-text";
  if (href) {
    text.href = href;
    text.addEventListener("click", (e) => {
      openNotification(e, n);
      el.remove();
    });
  }
  const title = document.createElement("strong");
  title.textContent = n.title;
  const body = document.createElement("span");
  body.textContent = n.body;
  text.append(title, body);

  const close = document.createElement("button");
  close.type = "button";
  close.className = "toast-close";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  close.addEventListener("click", () => el.remove());

  el.append(text, close);
  const region = $("toasts");
  region.append(el);
  // A burst must not bury the page: drop the oldest non-urgent ones first.
  const shown = [...region.children];
  for (const old of shown.filter((t) => t.dataset.priority !== "urgent")) {
    if (region.children.length <= MAX_TOASTS) break;
    if (old !== el) old.remove();
  }
  // Urgent ones stay until dismissed; the rest fade away.
  if (n.priority !== "urgent") setTimeout(() => el.remove(), TOAST_MS);
}

function notice(message) {
  toast({ id: 0, priority: "low", title: message, body: "", action_url: null });
}

// ---- routing --------------------------------------------------------------

function navigate(path) {
  const url = new URL(path, location.href);
  if (url.origin !== location.origin) {
    location.assign(url);
    return;
  }
  history.pushState({}, "", url.pathname + url.search);
  route();
}

async function route() {
  const match = location.pathname.match(/^\/deals\/(\d+)\/?$/);
  const view = $("deal-view");
  if (!match) {
    view.hidden = true;
    return;
  }
  view.hidden = false;
  $("deal-heading").textContent = `Deal ${match[1]}`;
  const body = $("deal-body");
  body.textContent = "Loading…";
  try {
    const deal = await client.getDeal(match[1]);
    const title = document.createElement("p");
    title.className = "deal-title";
    title.textContent = deal.title;
    const amount = document.createElement("p");
    amount.className = "deal-amount";
    amount.textContent = money.format(deal.amount);
    const created = document.createElement("p");
    created.className = "muted small";
    created.textContent = `Created ${when.format(new Date(deal.created_at))}`;
    body.replaceChildren(title, amount, created);
  } catch (err) {
    body.textContent = err.code === "not_found" ? "No such deal." : err.message;
  }
}

// ---- wiring ---------------------------------------------------------------

client.addEventListener("change", (e) => {
  if (e.detail.state.user) render(e.detail.state);
});
client.addEventListener("notification", (e) => toast(e.detail.notification));
client.addEventListener("logout", (e) => showLogin(e.detail.message));
// this tab's login, its session after a reload, or a login in another tab
client.addEventListener("login", () => showApp());

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const button = $("login-submit");
  button.disabled = true;
  try {
    await client.login($("login-username").value.trim(), $("login-password").value);
  } catch (err) {
    showLogin(err.code === "invalid_credentials" ? "Wrong username or password." : err.message);
  } finally {
    button.disabled = false;
  }
});

$("logout").addEventListener("click", () => client.logout());

$("mark-all-read").addEventListener("click", () =>
  client.markAllRead().catch((err) => notice(`Could not mark all read: ${err.message}`)),
);

$("bell").addEventListener("click", () => {
  unreadOnly = !unreadOnly;
  $("bell").setAttribute("aria-pressed", String(unreadOnly));
  render(client.state);
  $("notification-list").scrollIntoView({ block: "nearest" });
});

$("deal-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const result = $("deal-result");
  try {
    const deal = await client.createDeal($("deal-title").value.trim(), $("deal-amount").value);
    result.textContent = `Deal ${deal.id} created.`;
    e.target.reset();
  } catch (err) {
    result.textContent = err.message;
  }
});

document.addEventListener("click", (e) => {
  const link = e.target.closest("a[data-route], a.brand");
  if (link && !e.defaultPrevented && !e.metaKey && !e.ctrlKey) {
    e.preventDefault();
    navigate(link.getAttribute("href"));
  }
});
window.addEventListener("popstate", route);

// This tab's session survives a reload; a new tab gets an open tab's.
client.restore().then((started) => {
  if (!started && $("login-view").hidden) showLogin($("login-error").textContent);
});
