// Types of pgbell-client: the browser client of pgbell's wire contract.
// API and behaviour: docs/client.md in pgbell's repository.

/** How important a notification is; the page shows each differently. */
export type Priority = "low" | "normal" | "high" | "urgent";

/** A notification as pgbell sends it (docs/protocol.md, "Notification object"). */
export interface Notification {
  readonly id: number;
  readonly kind: string;
  readonly title: string;
  readonly body: string;
  readonly priority: Priority;
  /** A path of your app, an http(s) URL, or null; follow it only through actionUrl(). */
  readonly action_url: string | null;
  readonly data: Readonly<Record<string, unknown>>;
  /** ISO 8601 timestamps. */
  readonly created_at: string;
  readonly read_at: string | null;
}

/** The user a session belongs to, as /auth/login answers it. */
export interface User {
  readonly id: number | string;
  readonly username?: string;
  readonly roles?: readonly string[];
}

/** This tab's session: kept in memory and in the tab's sessionStorage. */
export interface Session {
  readonly token: string;
  readonly user: User | null;
  /** Milliseconds since the epoch, or null when unknown. */
  readonly expiresAt: number | null;
}

export type Status = "offline" | "connecting" | "live" | "reconnecting" | "polling";

/**
 * One snapshot of the client's state. Frozen: every change makes a new
 * object (and a new `notifications` array), so compare by reference.
 */
export interface State {
  /** null when logged out. */
  readonly user: User | null;
  readonly status: Status;
  /** Newest first, de-duplicated by id, at most `maxItems`. */
  readonly notifications: readonly Notification[];
  /** The server's count as of the last event. */
  readonly unreadCount: number;
  /** The resume point: the next connect asks /ws?since=highestId. */
  readonly highestId: number;
  /** Whether this tab holds the browser's one socket. */
  readonly leader: boolean;
}

/** Anything with sessionStorage's getItem, setItem and removeItem. */
export interface SessionStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface PgBellOptions {
  /** Where pgbell is served; "" (the default) is this page's origin. */
  baseUrl?: string;
  /** Where this tab keeps its session: sessionStorage by default; false keeps it in memory only. */
  storage?: SessionStore | false | null;
  storageKey?: string;
  /** Share one socket, and the session, between the tabs of a browser (default true). */
  crossTab?: boolean;
  channelName?: string;
  lockName?: string;
  /** How long restore() waits for an open tab to hand over its session (ms). */
  askTabsMs?: number;
  /** Origins besides the page's own whose action_url is followed; a wrong entry throws. */
  allowedLinkOrigins?: readonly string[];
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  stableAfterMs?: number;
  fallbackAfter?: number;
  pollIntervalMs?: number;
  pingIntervalMs?: number;
  maxItems?: number;
  listLimit?: number;
}

export type LogoutReason = "logout" | "token_expired" | "unauthorized";

/** The `detail` of each event the client emits. */
export interface PgBellEventMap {
  /** Anything in the state changed: `state` is the new snapshot. */
  change: { readonly state: State };
  /** A notification arrived live, or was missed while disconnected: toast it. */
  notification: { readonly notification: Notification };
  /** The client started with a session (this tab's, or another tab's). */
  login: { readonly user: User | null };
  /** Logged out here or in another tab, or the server refused the token. */
  logout: { readonly reason: LogoutReason; readonly message: string };
  /** A read the server refused over the socket failed over REST too. */
  error: { readonly error: unknown };
}

export type PgBellEventType = keyof PgBellEventMap;

/** An error of the REST API, with the contract's error `code`. */
export class PgBellError extends Error {
  constructor(status: number, code: string, message: string);
  readonly name: string;
  /** The HTTP status. */
  readonly status: number;
  /** The contract's code: "invalid_credentials", "not_found", "token_expired", ... */
  readonly code: string;
}

/** A deal of pgbell's demo domain. */
export interface Deal {
  readonly id: number;
  readonly title: string;
  readonly amount: number;
  readonly owner_id: number | string;
  readonly created_by: number | string | null;
  readonly created_at: string;
}

export class PgBellClient extends EventTarget {
  constructor(options?: PgBellOptions);
  /** Every option, defaults filled in. */
  readonly options: Readonly<Required<Omit<PgBellOptions, "storage">>> & {
    readonly storage: SessionStore | false | null;
  };
  /** The current snapshot; read it, never write it. */
  readonly state: State;
  /** This tab's session, or null. */
  readonly session: Session | null;

  /** The current snapshot (bound: pass it as it is to useSyncExternalStore). */
  getSnapshot(): State;
  /**
   * Calls `listener(state)` now and after every change; returns the function
   * that stops it (a Svelte store; React's useSyncExternalStore `subscribe`).
   * Bound, like getSnapshot.
   */
  subscribe(listener: (state: State) => void): () => void;

  /** POST /auth/login, keep the session, hand it to the other tabs, start. */
  login(username: string, password: string): Promise<User>;
  /** Use a token your application issued; `expiresIn` in seconds. Returns what start() returns. */
  useToken(token: string, options?: { user?: User | null; expiresIn?: number }): boolean;
  /** Start with this tab's session; false when it has none (it then asks the other tabs). */
  start(): boolean;
  /** start(), and without a session wait (at most askTabsMs) for an open tab's. */
  restore(): Promise<boolean>;
  /** Forget the session in this and every other tab, close the socket. */
  logout(): void;
  /** The absolute URL a click on it may follow, or null (another origin, another scheme). */
  actionUrl(notification: Pick<Notification, "action_url"> | null | undefined): string | null;

  /** Over the socket when this tab holds a live one, else REST. */
  markRead(id: number): Promise<void>;
  /** POST /notifications/read-all; resolves to the number updated. */
  markAllRead(): Promise<number>;
  /** POST /deals (pgbell's demo domain). */
  createDeal(title: string, amount: number | string): Promise<Deal>;
  /** GET /deals/{id} (pgbell's demo domain). */
  getDeal(id: number | string): Promise<Deal>;
  /** Any authenticated REST call of the contract; throws PgBellError. */
  request<T = unknown>(method: string, path: string, json?: unknown): Promise<T>;

  addEventListener<K extends PgBellEventType>(
    type: K,
    listener: (event: CustomEvent<PgBellEventMap[K]>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends PgBellEventType>(
    type: K,
    listener: (event: CustomEvent<PgBellEventMap[K]>) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}
