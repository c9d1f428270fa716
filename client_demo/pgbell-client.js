// pgbell-client.js: the browser client of pgbell's wire contract (docs/protocol.md).
//
// Dependency-free ES modules, no build step: this file and its modules in
// ./pgbell-client/. One PgBellClient per tab keeps ONE state (notifications
// newest first, unread count, connection status) as immutable snapshots:
// every change makes a new frozen object and tells the page through a
// `change` event, so any store (React's useSyncExternalStore, a Svelte
// store) can hold it.
//
// All tabs of a browser share one WebSocket (./pgbell-client/tabs.js): the
// leader tab owns the socket (./pgbell-client/connection.js) and relays its
// state over a BroadcastChannel; the other tabs mirror it. When the leader
// tab closes, the next tab takes over and resumes from the highest id it
// has seen, so no notification is lost.
//
// The session (token, user, expiry) lives in memory and in the tab's own
// sessionStorage (./pgbell-client/session.js), never in localStorage. A tab
// opened later asks the open tabs for it over the same BroadcastChannel; a
// login, a new token or a logout in one tab is posted there for all of them.
//
// pgbell serves these files at /static/ and ships them in its wheel; the
// npm package pgbell-client (client/ in pgbell's repository) packs the same
// files. See docs/client.md for the API.

import { Connection } from "./pgbell-client/connection.js";
import { applyFrame, poll } from "./pgbell-client/feed.js";
import { followableUrl, linkOrigins } from "./pgbell-client/links.js";
import { DEFAULTS, EXPIRED_MESSAGE, UNAUTHORIZED_MESSAGE } from "./pgbell-client/options.js";
import { fromChannel } from "./pgbell-client/relay.js";
import { callApi, PgBellError } from "./pgbell-client/rest.js";
import {
  expired,
  forgetLegacySession,
  loadSession,
  pickStorage,
  removeSession,
  saveSession,
} from "./pgbell-client/session.js";
import { emptyState, freezeState, nextState, shared, withRead } from "./pgbell-client/state.js";
import { Tabs } from "./pgbell-client/tabs.js";

export { PgBellError };

export class PgBellClient extends EventTarget {
  constructor(options = {}) {
    super();
    this.options = { ...DEFAULTS, ...options };
    this.storage = pickStorage(this.options.storage);
    this._state = emptyState();
    this._linkOrigins = linkOrigins(this.options.allowedLinkOrigins);
    // names this tab in the channel, so an answer to its `ask` reaches it alone
    this._tabId = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    forgetLegacySession(this.storage, this.options.storageKey);
    this._session = loadSession(this.storage, this.options.storageKey);
    this._tabs = new Tabs(this.options, (message) => fromChannel(this, message));
    this._connection = new Connection(this.options, {
      socketUrl: () => this._socketUrl(),
      onFrame: (frame, first) => applyFrame(this, frame, first),
      onDown: () => {
        if (this._state.status !== "polling") this._update({ status: "reconnecting" });
      },
      onRefused: (reason) => this._authFailed(reason),
      poll: () => poll(this, () => this._connection.polling),
    });
    // ids marked read over the socket and not yet confirmed by a `read`
    // frame: sent again over REST if the server refuses the socket read
    this._pendingReads = new Set();
    this._running = false;
    this._leader = false;
    this._onOnline = () => this._connection.connectNow();
    // bound, so a store can take them as they are:
    // useSyncExternalStore(client.subscribe, client.getSnapshot)
    this.subscribe = this.subscribe.bind(this);
    this.getSnapshot = this.getSnapshot.bind(this);
  }

  // ---- state -------------------------------------------------------------

  /** The current snapshot; frozen, and replaced (never changed) on every change. */
  get state() {
    return this._state;
  }

  /** The current snapshot, as a function: what useSyncExternalStore asks for. */
  getSnapshot() {
    return this._state;
  }

  /**
   * Call `listener(state)` now and after every change; returns the function
   * that stops it. This is the Svelte store contract, and what React's
   * useSyncExternalStore takes as its `subscribe`.
   */
  subscribe(listener) {
    const onChange = (e) => listener(e.detail.state);
    this.addEventListener("change", onChange);
    listener(this._state);
    return () => this.removeEventListener("change", onChange);
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
    const expiresAt = Date.now() + body.expires_in * 1000;
    this._useSession({ token: body.token, user: body.user, expiresAt }, true);
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
    const sharing = this._tabs.listen();
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
    this._state = freezeState({ ...emptyState(), user: session.user, status: "connecting" });
    globalThis.addEventListener?.("online", this._onOnline);
    this._changed();
    if (sharing) {
      this._post({ type: "hello" });
      this._tabs.lead(
        () => this._becomeLeader(),
        () => this._running,
      );
    }
    this._emit("login", { user: session.user });
    if (!sharing) this._becomeLeader();
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
    if (!this._tabs.channel) return false;
    // null: the browser cannot tell whether a tab is logged in; wait for an answer
    if ((await this._tabs.anyLeader()) === false) return this._running;
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
    return followableUrl(notification, this._linkOrigins);
  }

  // ---- actions -----------------------------------------------------------

  /** Mark one notification read: over the socket when live, else REST. */
  async markRead(id) {
    const item = this._state.notifications.find((n) => n.id === id);
    if (item && item.read_at) return;
    if (this._leader && this._connection.send({ type: "read", ids: [id] })) {
      this._pendingReads.add(id);
      // The server's `read` frame confirms with the true count; show it now.
      this._applyRead([id], Math.max(0, this._state.unreadCount - (item ? 1 : 0)));
      return;
    }
    const body = await this._fetch("POST", `/notifications/${encodeURIComponent(id)}/read`);
    this._applyRead([id], body.unread_count);
    this._post({ type: "read", ids: [id], unread_count: body.unread_count });
  }

  /** POST /notifications/read-all; resolves to the number updated. */
  async markAllRead() {
    const body = await this._fetch("POST", "/notifications/read-all");
    const ids = this._state.notifications.filter((n) => !n.read_at).map((n) => n.id);
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

  // ---- tabs --------------------------------------------------------------

  _becomeLeader() {
    if (!this._running) return;
    this._leader = true;
    this._update({ leader: true });
    this._connection.start();
  }

  _post(message) {
    const user = this._session?.user ?? this._state.user;
    this._tabs.post({ ...message, userId: user?.id ?? null });
  }

  /**
   * Make `session` this tab's (memory and storage) and start with it.
   * Another user's session ends the current one first; the same user's new
   * token replaces the old one, and the next connect uses it. `announce`
   * posts it to every other tab, which do the same.
   */
  _useSession(session, announce) {
    this._tabs.listen();
    if (this._running && this._session?.user?.id !== session.user?.id) {
      this._end({ reason: "logout", message: "" });
    }
    this._session = session;
    saveSession(this.storage, this.options.storageKey, session);
    if (announce) this._post({ type: "session", session });
    return this._running || this.start();
  }

  _socketUrl() {
    if (!this._session) return null;
    const base = new URL(this.options.baseUrl || "/", globalThis.location?.href);
    const url = new URL("/ws", base);
    url.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", this._session.token);
    if (this._state.highestId > 0) url.searchParams.set("since", String(this._state.highestId));
    return url.toString();
  }

  // ---- changes -------------------------------------------------------------

  _applyRead(ids, unreadCount) {
    this._update(withRead(this._state, ids, unreadCount));
  }

  /** A new snapshot with `patch`, and a `change` event, unless nothing changed. */
  _update(patch, relay = true) {
    const next = nextState(this._state, patch);
    if (next === this._state) return;
    this._state = next;
    this._changed(relay);
  }

  _changed(relay = true) {
    if (relay && this._leader) this._post({ type: "state", state: shared(this._state) });
    this._emit("change", { state: this._state });
  }

  _live(notification) {
    this._emit("notification", { notification });
    if (this._leader) this._post({ type: "notification", notification });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // ---- ending --------------------------------------------------------------

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
    this._session = null;
    removeSession(this.storage, this.options.storageKey);
    this._connection.stop();
    this._tabs.resign();
    this._pendingReads.clear();
    globalThis.removeEventListener?.("online", this._onOnline);
    this._state = emptyState();
    if (wasRunning || detail.message) {
      this._emit("change", { state: this._state });
      this._emit("logout", detail);
    }
  }

  // ---- REST ----------------------------------------------------------------

  async _fetch(method, path, json, auth = true) {
    let token = null;
    if (auth) {
      token = this._session?.token;
      if (!token) {
        this._authFailed("unauthorized");
        throw new PgBellError(401, "unauthorized", UNAUTHORIZED_MESSAGE);
      }
    }
    try {
      return await callApi(this.options.baseUrl, method, path, json, token);
    } catch (err) {
      if (auth && err instanceof PgBellError && err.status === 401) this._authFailed(err.code);
      throw err;
    }
  }
}
