// The client's options and their defaults (docs/client.md, "Constructor"),
// and the messages a `logout` event carries when the server ends a session.

/** Every option of `new PgBellClient(options)`, with its default. */
export const DEFAULTS = {
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

export const EXPIRED_MESSAGE = "Your session expired, please log in again.";
export const UNAUTHORIZED_MESSAGE = "You were signed out, please log in again.";
