// pgbell-client.js: the browser client of pgbell's wire contract (docs/protocol.md).
//
// A dependency-free ES module, no build step. One PgBellClient per tab keeps
// ONE state (notifications newest first, unread count, connection status)
// and tells the page about every change through EventTarget events.
//
// All tabs of a browser share one WebSocket: the tab holding the Web Lock
// is the leader, owns the socket (or the REST polling fallback) and relays
// its state over a BroadcastChannel; the other tabs mirror it. When the
// leader tab closes, the browser hands the lock to the next tab, which
// resumes from the highest id it has seen, so no notification is lost.
//
// The session (token, user, expiry) lives in memory and in the tab's own
// sessionStorage, so a reload keeps it, but never in localStorage, where it
// would outlive the browser session. A tab opened later asks the open tabs
// for it over the same BroadcastChannel; a login, a new token or a logout
// in one tab is posted there for all of them.
//
// See docs/client.md for the API.

const DEFAULTS = {
  baseUrl: "", // same origin
  storage: null, // default: window.sessionStorage (this tab only); false: memory only
  storageKey: "pgbell.session",
  crossTab: true, // share one socket and the session between tabs
  channelName: "pgbell",
  lockName: "pgbell-leader",
  askTabsMs: 300, // how long restore() waits for an open tab to hand over its session
  allowedLinkOrigins: [], // origins besides the page's own whose action_url is followed
  backoffBaseMs: 500,
  backoffMaxMs: 30000,
  stableAfterMs: 10000, // a connection up this long resets the backoff
  fallbackAfter: 2, // consecutive attempts that never went live before polling REST
  pollIntervalMs: 3000,
  pingIntervalMs: 25000, // app-level ping; no frame for ping+10 s means a dead link
  maxItems: 200,
  listLimit: 50,
};

/** An error from the REST API, carrying the contract's `code`. */
export class PgBellError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "PgBellError";
    this.status = status;
    this.code = code;
  }
}

const AUTH_CLOSE = 4401;
const EXPIRED_MESSAGE = "Your session expired, please log in again.";
const UNAUTHORIZED_MESSAGE = "You were signed out, please log in again.";

/** The configured storage: sessionStorage unless told otherwise; `false` is none. */
function pickStorage(option) {
  if (option === false) return null;
  if (option) return option;
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null; // a sandboxed frame, or storage blocked by the user
  }
}

/** Older versions kept the session in localStorage: remove what they left. */
function forgetLegacySession(storage, key) {
  try {
    const legacy = globalThis.localStorage;
    if (legacy && legacy !== storage) legacy.removeItem(key);
  } catch {
    /* no localStorage here: nothing was left in it */
  }
}

/** `value` if it looks like a session {token, user, expiresAt}, else null. */
function asSession(value) {
  if (!value || typeof value !== "object" || typeof value.token !== "string") return null;
  return { token: value.token, user: value.user ?? null, expiresAt: value.expiresAt ?? null };
}

function expired(session) {
  return typeof session.expiresAt === "number" && session.expiresAt <= Date.now();
}

/** The origins of `allowedLinkOrigins`; a wrong entry fails loudly, never widens. */
function origins(list) {
  return new Set(
    (list ?? []).map((entry) => {
      let url = null;
      try {
        url = new URL(entry);
      } catch {
        /* not an absolute URL: reported below */
      }
      if (url?.protocol !== "http:" && url?.protocol !== "https:") {
        throw new TypeError(`allowedLinkOrigins: not an http(s) origin: ${entry}`);
      }
      return url.origin;
    }),
  );
}

function emptyState() {
  return {
    user: null,
    status: "offline", // offline | connecting | live | reconnecting | polling
    notifications: [], // newest first
    unreadCount: 0,
    highestId: 0,
    leader: false,
  };
}

export class PgBellClient extends EventTarget {
  constructor(options = {}) {
    super();
    this.options = { ...DEFAULTS, ...options };
    this.storage = pickStorage(this.options.storage);
    this.state = emptyState();
    this._linkOrigins = origins(this.options.allowedLinkOrigins);
    // names this tab in the channel, so an answer to its `ask` reaches it alone
    this._tabId = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    forgetLegacySession(this.storage, this.options.storageKey);
    this._session = this._load();
    this._ws = null;
    this._timers = new Set();
    this._retryTimer = null;
    this._pollTimer = null;
    this._attempt = 0; // backoff exponent
    this._notLive = 0; // consecutive attempts that never reached a snapshot
    // ids marked read over the socket and not yet confirmed by a `read`
    // frame: sent again over REST if the server refuses the socket read
    this._pendingReads = new Set();
    this._running = false;
    this._leader = false;
    this._lockAbort = null;
    this._releaseLock = null;
    this._channel = null;
    this._onOnline = () => this._connectNow();
  }

  // ---- session -----------------------------------------------------------

  /** This tab's session {token, user, expiresAt} or null. */
  get session() {
    return this._session;
  }

  /**
   * POST /auth/login; keeps the session, hands it to every other tab and
   * starts. Throws PgBellError.
   */
  async login(username, password) {
    const body = await this._fetch("POST", "/auth/login", { username, password }, false);
    this._useSession(
      { token: body.token, user: body.user, expiresAt: Date.now() + body.expires_in * 1000 },
      true,
    );
    return body.user;
  }

  /**
   * Use a token your application issued (signed with a key pgbell trusts)
   * instead of login(): keeps the session as login() does, hands it to every
   * other tab and starts, so pgbell's /auth/login is never called.
   * `expiresIn` is in seconds, like login's `expires_in`. Returns what
   * start() returns.
   */
  useToken(token, { user = null, expiresIn } = {}) {
    const expiresAt = typeof expiresIn === "number" ? Date.now() + expiresIn * 1000 : null;
    return this._useSession({ token, user, expiresAt }, true);
  }

  /** Forget the session in this and every other tab, close the socket. */
  logout() {
    // a tab that is logged out already has no session to end elsewhere
    if (this._running) this._post({ type: "logout" });
    this._end({ reason: "logout", message: "" });
  }

  /**
   * Start with this tab's session (kept across a reload), if any; emits
   * `login`. Returns whether it started. Without a session it asks the
   * other tabs for theirs: an answer, or a later login in any tab, starts
   * this one too and emits `login` (restore() waits for that answer).
   */
  start() {
    this._listen();
    if (this._session && expired(this._session)) {
      this._end({ reason: "token_expired", message: EXPIRED_MESSAGE });
    }
    const session = this._session;
    if (!session) {
      this._post({ type: "ask", from: this._tabId });
      return false;
    }
    if (this._running) return true;
    this._running = true;
    this.state = { ...emptyState(), user: session.user, status: "connecting" };
    globalThis.addEventListener?.("online", this._onOnline);
    if (this._channel) {
      this._post({ type: "hello" });
      this._lockAbort = new AbortController();
      navigator.locks
        .request(this.options.lockName, { signal: this._lockAbort.signal }, () => {
          if (!this._running) return undefined;
          // Held until this tab closes or logs out: the browser then hands
          // the lock to the next waiting tab.
          return new Promise((resolve) => {
            this._releaseLock = resolve;
            this._becomeLeader();
          });
        })
        .catch(() => {}); // aborted on logout
    } else {
      this._becomeLeader();
    }
    this._changed();
    this._emit("login", { user: session.user });
    return true;
  }

  /**
   * start(), and when this tab has no session, wait for an open tab to hand
   * over its own. Resolves to whether the client started: at once with a
   * session of this tab, or once a tab answered; false at once when no tab
   * holds the leader lock (none is logged in), or after `askTabsMs`.
   */
  async restore() {
    if (this.start()) return true;
    if (!this._channel) return false;
    try {
      const { held = [] } = await navigator.locks.query();
      if (!held.some((lock) => lock.name === this.options.lockName)) return this._running;
    } catch {
      // no way to tell whether a tab is logged in: wait for an answer
    }
    if (this._running) return true;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.removeEventListener("login", done);
        resolve(this._running);
      };
      const timer = setTimeout(done, this.options.askTabsMs);
      this.addEventListener("login", done);
    });
  }

  /**
   * Where a click on this notification may go: its action_url resolved
   * against the page, as an absolute URL, when that is on the page's own
   * origin or on one of `allowedLinkOrigins`; otherwise null, and the page
   * shows the notification without following it.
   */
  actionUrl(notification) {
    const raw = notification?.action_url;
    if (typeof raw !== "string" || raw === "") return null;
    let url;
    try {
      url = new URL(raw, globalThis.location?.href);
    } catch {
      return null;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    const own = url.origin === globalThis.location?.origin;
    return own || this._linkOrigins.has(url.origin) ? url.href : null;
  }

  // ---- actions -----------------------------------------------------------

  /** Mark one notification read: over the socket when live, else REST. */
  async markRead(id) {
    const item = this.state.notifications.find((n) => n.id === id);
    if (item && item.read_at) return;
    const ws = this._ws;
    if (this._leader && ws?.readyState === WebSocket.OPEN && this.state.status === "live") {
      ws.send(JSON.stringify({ type: "read", ids: [id] }));
      this._pendingReads.add(id);
      // The server's `read` frame confirms with the true count; show it now.
      this._applyRead([id], Math.max(0, this.state.unreadCount - (item ? 1 : 0)));
      return;
    }
    const body = await this._fetch("POST", `/notifications/${encodeURIComponent(id)}/read`);
    this._applyRead([id], body.unread_count);
    this._post({ type: "read", ids: [id], unread_count: body.unread_count });
  }

  /** POST /notifications/read-all. */
  async markAllRead() {
    const body = await this._fetch("POST", "/notifications/read-all");
    const ids = this.state.notifications.filter((n) => !n.read_at).map((n) => n.id);
    this._applyRead(ids, body.unread_count);
    this._post({ type: "read", ids, unread_count: body.unread_count });
    return body.updated;
  }

  /** POST /deals; the notification itself arrives from the database trigger. */
  async createDeal(title, amount) {
    const body = await this._fetch("POST", "/deals", { title, amount: Number(amount) });
    return body.deal;
  }

  /** GET /deals/{id}. */
  async getDeal(id) {
    const body = await this._fetch("GET", `/deals/${encodeURIComponent(id)}`);
    return body.deal;
  }

  /** Any authenticated REST call of the contract; throws PgBellError. */
  async request(method, path, json) {
    return this._fetch(method, path, json);
  }

  // ---- leadership and the channel ----------------------------------------

  _becomeLeader() {
    if (!this._running) return;
    this._leader = true;
    this.state.leader = true;
    this._attempt = 0;
    this._notLive = 0;
    this._connect();
  }

  /**
   * Open the BroadcastChannel once: from then on this tab hears the other
   * tabs' logins and logouts, even while it is logged out itself. It is
   * same-origin by construction, so only this site's pages hear the session.
   */
  _listen() {
    const canShare =
      this.options.crossTab && globalThis.navigator?.locks && globalThis.BroadcastChannel;
    if (!canShare || this._channel) return;
    this._channel = new BroadcastChannel(this.options.channelName);
    this._channel.onmessage = (e) => this._fromChannel(e.data);
  }

  _post(message) {
    const user = this._session?.user ?? this.state.user;
    try {
      this._channel?.postMessage({ ...message, userId: user?.id ?? null });
    } catch {
      // a closed channel: nothing to tell
    }
  }

  _fromChannel(msg) {
    if (!msg) return;
    if (msg.type === "ask") {
      // a tab without a session: hand it ours (it alone takes the answer)
      if (this._running && this._session) {
        this._post({ type: "session", session: this._session, to: msg.from });
      }
      return;
    }
    if (msg.type === "session") {
      // an answer to another tab's ask, or to ours once we have one, is not news
      if (msg.to != null && (msg.to !== this._tabId || this._running)) return;
      const session = asSession(msg.session);
      if (session && !expired(session)) this._useSession(session, false);
      return;
    }
    if (!this._running) return;
    if (msg.userId != null && this.state.user && msg.userId !== this.state.user.id) return;
    switch (msg.type) {
      case "hello":
        if (this._leader) this._post({ type: "state", state: this._shared() });
        break;
      case "state":
        if (!this._leader) {
          this.state = { ...this.state, ...msg.state, leader: false };
          this._changed(false);
        }
        break;
      case "notification":
        if (!this._leader) this._emit("notification", { notification: msg.notification });
        break;
      case "read":
        this._applyRead(msg.ids, msg.unread_count);
        break;
      case "auth":
        this._end({ reason: msg.reason, message: msg.message });
        break;
      case "logout":
        this._end({ reason: "logout", message: "" });
        break;
    }
  }

  _shared() {
    const { status, notifications, unreadCount, highestId } = this.state;
    return { status, notifications, unreadCount, highestId };
  }

  /**
   * Make `session` this tab's (memory and storage) and start with it.
   * Another user's session ends the current one first; the same user's new
   * token replaces the old one, and the next connect uses it. `announce`
   * posts it to every other tab, which do the same.
   */
  _useSession(session, announce) {
    this._listen();
    if (this._running && this._session?.user?.id !== session.user?.id) {
      this._end({ reason: "logout", message: "" });
    }
    this._session = session;
    this._save(session);
    if (announce) this._post({ type: "session", session });
    return this._running || this.start();
  }

  _load() {
    try {
      const raw = this.storage?.getItem(this.options.storageKey);
      return raw ? asSession(JSON.parse(raw)) : null;
    } catch {
      return null;
    }
  }

  _save(session) {
    try {
      this.storage?.setItem(this.options.storageKey, JSON.stringify(session));
    } catch {
      // storage full or blocked: the session lives in memory only
    }
  }

  _forget() {
    this._session = null;
    try {
      this.storage?.removeItem(this.options.storageKey);
    } catch {
      /* storage unavailable */
    }
  }

  // ---- the socket --------------------------------------------------------

  _wsUrl() {
    const base = new URL(this.options.baseUrl || "/", globalThis.location?.href);
    const url = new URL("/ws", base);
    url.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", this._session?.token ?? "");
    if (this.state.highestId > 0) url.searchParams.set("since", String(this.state.highestId));
    return url.toString();
  }

  _connect() {
    this._retryTimer = null;
    if (!this._running || !this._leader || this._ws) return;
    if (!this._session) return this._end({ reason: "unauthorized", message: UNAUTHORIZED_MESSAGE });
    let ws;
    try {
      ws = new WebSocket(this._wsUrl());
    } catch {
      return this._socketClosed(null, { code: 1006, reason: "" }, false);
    }
    this._ws = ws;
    let live = false;
    let stable = null;
    let lastFrame = Date.now();
    let ping = null;
    ws.onopen = () => {
      lastFrame = Date.now();
      ping = setInterval(() => {
        if (Date.now() - lastFrame > this.options.pingIntervalMs + 10000) {
          // no frame, not even a pong: the link is dead though TCP says nothing
          this._socketClosed(ws, { code: 4000, reason: "ping timeout" }, live);
          clearInterval(ping);
          try {
            ws.close();
          } catch {
            /* already closing */
          }
        } else if (ws.readyState === WebSocket.OPEN) {
          ws.send('{"type":"ping"}');
        }
      }, this.options.pingIntervalMs);
    };
    ws.onmessage = (e) => {
      lastFrame = Date.now();
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      if (frame.type === "snapshot" && !live) {
        live = true;
        this._notLive = 0;
        this._stopPolling();
        stable = setTimeout(() => (this._attempt = 0), this.options.stableAfterMs);
        this.state.status = "live";
      }
      this._applyFrame(frame);
    };
    ws.onclose = (e) => {
      clearTimeout(stable);
      clearInterval(ping);
      this._socketClosed(ws, e, live);
    };
    ws.onerror = () => {}; // a close event always follows
  }

  _socketClosed(ws, event, wasLive) {
    if (ws && this._ws !== ws) return; // already handled
    this._ws = null;
    if (!this._running || !this._leader) return;
    if (event.code === AUTH_CLOSE) {
      const expired = event.reason === "token_expired";
      return this._authFailed(expired ? "token_expired" : "unauthorized");
    }
    // 1001 (server shutdown), 1013 (slow consumer), network loss: reconnect.
    if (!wasLive) this._notLive += 1;
    if (this._notLive >= this.options.fallbackAfter) this._startPolling();
    if (this.state.status !== "polling") this._setStatus("reconnecting");
    this._scheduleReconnect();
  }

  _scheduleReconnect() {
    clearTimeout(this._retryTimer);
    const ceiling = Math.min(
      this.options.backoffMaxMs,
      this.options.backoffBaseMs * 2 ** Math.min(this._attempt, 16),
    );
    this._attempt += 1;
    // full jitter: anywhere in [0, ceiling), so a restarted server is not
    // hit by every client at the same instant
    this._retryTimer = setTimeout(() => this._connect(), Math.random() * ceiling);
  }

  _connectNow() {
    if (!this._running || !this._leader || this._ws) return;
    clearTimeout(this._retryTimer);
    this._connect();
  }

  // ---- the REST fallback -------------------------------------------------

  _startPolling() {
    if (this._pollTimer) return;
    const tick = async () => {
      if (!this._pollTimer) return;
      try {
        const body = await this._fetch("GET", `/notifications?limit=${this.options.listLimit}`);
        if (!this._pollTimer || this.state.status === "live") return;
        const fresh = body.items.filter((n) => n.id > this.state.highestId);
        const first = this.state.status !== "polling" && this.state.highestId === 0;
        this._merge(body.items);
        this.state.unreadCount = body.unread_count;
        this.state.status = "polling";
        this._changed();
        if (!first) for (const n of fresh.reverse()) if (!n.read_at) this._live(n);
      } catch (err) {
        if (err instanceof PgBellError && err.status === 401) return; // handled
        if (this.state.status === "polling") this._setStatus("reconnecting");
      }
      if (this._pollTimer) this._pollTimer = setTimeout(tick, this.options.pollIntervalMs);
    };
    this._pollTimer = setTimeout(tick, 0);
  }

  _stopPolling() {
    clearTimeout(this._pollTimer);
    this._pollTimer = null;
  }

  // ---- state -------------------------------------------------------------

  _applyFrame(frame) {
    switch (frame.type) {
      case "snapshot": {
        const missed = frame.missed ?? [];
        const unread = frame.notifications ?? [];
        const resumed = frame.missed !== undefined;
        const known = new Set(this.state.notifications.map((n) => n.id));
        // A complete snapshot lists every unread item: anything else we show
        // as unread was read while we were away.
        if (unread.length >= frame.unread_count) {
          const stillUnread = new Set(
            [...unread, ...missed].filter((n) => !n.read_at).map((n) => n.id),
          );
          const now = new Date().toISOString();
          for (const n of this.state.notifications) {
            if (!n.read_at && !stillUnread.has(n.id)) n.read_at = now;
          }
        }
        this._merge([...unread, ...missed]);
        this.state.unreadCount = frame.unread_count;
        this._changed();
        // Items committed while we were away are news: toast them.
        if (resumed) for (const n of missed) if (!known.has(n.id) && !n.read_at) this._live(n);
        if (!resumed || frame.missed_truncated) this._refreshList();
        break;
      }
      case "notification": {
        const isNew = !this.state.notifications.some((n) => n.id === frame.notification.id);
        this._merge([frame.notification]);
        this.state.unreadCount = frame.unread_count;
        this._changed();
        if (isNew) this._live(frame.notification);
        break;
      }
      case "read":
        for (const id of frame.ids) this._pendingReads.delete(id);
        this._applyRead(frame.ids, frame.unread_count);
        break;
      case "error":
        // A read the server refused over the socket (too many a second, or
        // the database was away) was already shown as read: make it true.
        if (["rate_limited", "unavailable"].includes(frame.error?.code)) this._retryReads();
        break;
    }
  }

  /** Mark the unconfirmed socket reads read over REST instead. */
  async _retryReads() {
    const ids = [...this._pendingReads];
    this._pendingReads.clear();
    for (const id of ids) {
      try {
        const body = await this._fetch("POST", `/notifications/${encodeURIComponent(id)}/read`);
        this._applyRead([id], body.unread_count);
        this._post({ type: "read", ids: [id], unread_count: body.unread_count });
      } catch (err) {
        this._emit("error", { error: err });
      }
    }
  }

  /** The most recent items, read ones included: the snapshot only has unread. */
  async _refreshList() {
    try {
      const body = await this._fetch("GET", `/notifications?limit=${this.options.listLimit}`);
      this._merge(body.items);
      this._changed();
    } catch {
      // the list stays as the snapshot left it
    }
  }

  _merge(items) {
    const byId = new Map(this.state.notifications.map((n) => [n.id, n]));
    for (const item of items) {
      const old = byId.get(item.id);
      // read is one-way: keep whichever copy knows it was read
      byId.set(item.id, { ...old, ...item, read_at: item.read_at ?? old?.read_at ?? null });
      if (item.id > this.state.highestId) this.state.highestId = item.id;
    }
    this.state.notifications = [...byId.values()]
      .sort((a, b) => b.id - a.id)
      .slice(0, this.options.maxItems);
  }

  _applyRead(ids, unreadCount) {
    const set = new Set(ids);
    const now = new Date().toISOString();
    this.state.notifications = this.state.notifications.map((n) =>
      set.has(n.id) && !n.read_at ? { ...n, read_at: now } : n,
    );
    if (typeof unreadCount === "number") this.state.unreadCount = unreadCount;
    this._changed();
  }

  _live(notification) {
    this._emit("notification", { notification });
    if (this._leader) this._post({ type: "notification", notification });
  }

  _setStatus(status) {
    if (this.state.status === status) return;
    this.state.status = status;
    this._changed();
  }

  _changed(relay = true) {
    if (relay && this._leader) this._post({ type: "state", state: this._shared() });
    this._emit("change", { state: this.state });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // ---- ending ------------------------------------------------------------

  _authFailed(reason) {
    const message = reason === "token_expired" ? EXPIRED_MESSAGE : UNAUTHORIZED_MESSAGE;
    // A call made while logged out (or answered after a logout) concerns
    // this tab alone: the others may have logged in since.
    if (this._running) this._post({ type: "auth", reason, message });
    this._end({ reason, message });
  }

  /**
   * Stop everything and forget this tab's session (each tab clears its own
   * storage); emits `logout` {reason, message}. The channel stays open, so
   * a later login in another tab still reaches this one.
   */
  _end(detail) {
    const wasRunning = this._running;
    this._running = false;
    this._leader = false;
    this._forget();
    clearTimeout(this._retryTimer);
    this._stopPolling();
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onopen = null;
      try {
        ws.close(1000, "logout");
      } catch {
        /* already closed */
      }
    }
    this._lockAbort?.abort();
    this._releaseLock?.();
    this._lockAbort = this._releaseLock = null;
    globalThis.removeEventListener?.("online", this._onOnline);
    this.state = emptyState();
    if (wasRunning || detail.message) {
      this._emit("change", { state: this.state });
      this._emit("logout", detail);
    }
  }

  // ---- REST --------------------------------------------------------------

  async _fetch(method, path, json, auth = true) {
    const headers = { Accept: "application/json" };
    if (json !== undefined) headers["Content-Type"] = "application/json";
    if (auth) {
      const token = this._session?.token;
      if (!token) {
        this._authFailed("unauthorized");
        throw new PgBellError(401, "unauthorized", UNAUTHORIZED_MESSAGE);
      }
      headers.Authorization = `Bearer ${token}`;
    }
    const url = new URL(path, new URL(this.options.baseUrl || "/", globalThis.location?.href));
    const response = await fetch(url, {
      method,
      headers,
      // GET /deals/{id} answers HTML to a page load and JSON to us at the
      // same URL; never let the HTTP cache hand one to the other.
      cache: "no-store",
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (response.ok && body === null) {
      throw new PgBellError(response.status, "invalid_response", "the server did not answer JSON");
    }
    if (!response.ok) {
      const code = body?.error?.code ?? "http_" + response.status;
      const message = body?.error?.message ?? `HTTP ${response.status}`;
      if (auth && response.status === 401) this._authFailed(code);
      throw new PgBellError(response.status, code, message);
    }
    return body;
  }
}
