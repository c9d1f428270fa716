// Types of pgbell-client/react: the client's state in React components.

import type { ReactNode } from "react";
import type {
  Notification,
  PgBellClient,
  PgBellEventMap,
  PgBellEventType,
  State,
  Status,
  User,
} from "./index.js";

/** Makes `client` the one that usePgBell() and usePgBellEvent() use below it. */
export function PgBellProvider(props: { client: PgBellClient; children?: ReactNode }): ReactNode;

/** `client` if given, else the nearest PgBellProvider's; throws when there is neither. */
export function usePgBellClient(client?: PgBellClient): PgBellClient;

export interface PgBell {
  /** The whole snapshot; the fields below are taken from it. */
  readonly state: State;
  readonly user: User | null;
  readonly status: Status;
  /** Newest first. */
  readonly notifications: readonly Notification[];
  readonly unreadCount: number;
  /** Stable as long as the client is: safe in effect dependencies. */
  readonly markRead: (id: number) => Promise<void>;
  /** Resolves to the number of notifications it marked read. */
  readonly markAllRead: () => Promise<number>;
  readonly client: PgBellClient;
}

/** The client's state, re-rendering the component on every change. */
export function usePgBell(client?: PgBellClient): PgBell;

/** Calls the latest `handler(detail)` on each `type` event of the client. */
export function usePgBellEvent<K extends PgBellEventType>(
  type: K,
  handler: (detail: PgBellEventMap[K]) => void,
  client?: PgBellClient,
): void;
