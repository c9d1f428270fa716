// pgbell-client/react: the client's state in React components.
//
// The client keeps immutable snapshots (a new frozen object on every
// change), so React's useSyncExternalStore can hold it as it is: a
// component re-renders when its client's state changes, and only then.
// React is a peer dependency; nothing here is imported by the client
// itself, so a page without React never loads it.

import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useSyncExternalStore,
} from "react";

/** @typedef {import("pgbell-client").PgBellClient} PgBellClient */

const ClientContext = createContext(/** @type {PgBellClient | null} */ (null));

/**
 * Makes `client` the one that usePgBell() and usePgBellEvent() use below it.
 * @param {{ client: PgBellClient, children?: import("react").ReactNode }} props
 */
export function PgBellProvider({ client, children }) {
  return createElement(ClientContext.Provider, { value: client }, children);
}

/**
 * `client` if given, else the one of the nearest PgBellProvider.
 * @param {PgBellClient} [client]
 * @returns {PgBellClient}
 */
export function usePgBellClient(client) {
  const provided = useContext(ClientContext);
  const found = client ?? provided;
  if (!found) {
    throw new Error(
      "pgbell-client/react: no client; pass one to the hook or render inside <PgBellProvider client={...}>",
    );
  }
  return found;
}

/**
 * The client's state and its two reads, re-rendering on every change:
 * { state, user, status, notifications, unreadCount, markRead, markAllRead,
 * client }. `markRead(id)` and `markAllRead()` keep their identity as long
 * as the client does, so they can go into effect dependencies.
 * @param {PgBellClient} [client]
 */
export function usePgBell(client) {
  const bell = usePgBellClient(client);
  const state = useSyncExternalStore(bell.subscribe, bell.getSnapshot, bell.getSnapshot);
  const actions = useMemo(
    () => ({
      markRead: (id) => bell.markRead(id),
      markAllRead: () => bell.markAllRead(),
    }),
    [bell],
  );
  return useMemo(
    () => ({
      state,
      user: state.user,
      status: state.status,
      notifications: state.notifications,
      unreadCount: state.unreadCount,
      ...actions,
      client: bell,
    }),
    [state, actions, bell],
  );
}

/**
 * Call `handler(detail)` on each `type` event of the client ("notification"
 * for a toast, "logout", "login", "error"). The latest handler is called,
 * without re-subscribing on every render.
 * @template {import("pgbell-client").PgBellEventType} K
 * @param {K} type
 * @param {(detail: import("pgbell-client").PgBellEventMap[K]) => void} handler
 * @param {PgBellClient} [client]
 */
export function usePgBellEvent(type, handler, client) {
  const bell = usePgBellClient(client);
  const latest = useRef(handler);
  useEffect(() => {
    latest.current = handler;
  });
  useEffect(() => {
    const listener = (e) => latest.current(e.detail);
    bell.addEventListener(type, listener);
    return () => bell.removeEventListener(type, listener);
  }, [bell, type]);
}
