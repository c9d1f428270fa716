// The client's state, as immutable snapshots.
//
// Every change makes a new frozen state object (and a new notifications
// array); nothing in a snapshot is ever changed afterwards. So a store that
// compares by reference (React's useSyncExternalStore, a Svelte store, a
// memoised selector) sees each change, and an old snapshot still shows what
// it showed. A notification that did not change keeps its object, so a list
// can skip re-rendering it.
//
// These are plain functions from a state to the fields that change; the
// client (pgbell-client.js) applies them with one `change` event each.

/**
 * @typedef {{
 *   id: number, kind: string, title: string, body: string,
 *   priority: "low" | "normal" | "high" | "urgent", action_url: string | null,
 *   data: Record<string, unknown>, created_at: string, read_at: string | null,
 * }} Notification
 * @typedef {{ id: number | string, username?: string, roles?: string[] }} User
 * @typedef {{
 *   user: User | null,
 *   status: "offline" | "connecting" | "live" | "reconnecting" | "polling",
 *   notifications: readonly Notification[],
 *   unreadCount: number,
 *   highestId: number,
 *   leader: boolean,
 * }} State
 */

/** @returns {State} a frozen state with no user, offline. */
export function emptyState() {
  return freezeState({
    user: null,
    status: "offline",
    notifications: [], // newest first
    unreadCount: 0,
    highestId: 0, // resume point: /ws?since=highestId
    leader: false, // this tab holds the socket
  });
}

/** `state` frozen, with its notifications array and items (shallow). */
export function freezeState(state) {
  for (const n of state.notifications) Object.freeze(n);
  Object.freeze(state.notifications);
  return Object.freeze(state);
}

/**
 * `patch` applied to `state` as a new frozen snapshot, or `state` itself
 * when no field of the patch differs from it.
 */
export function nextState(state, patch) {
  if (Object.keys(patch).every((key) => Object.is(state[key], patch[key]))) return state;
  return freezeState({ ...state, ...patch });
}

/** Whether two copies of a notification say the same (its `data` compared as JSON). */
function sameItem(a, b) {
  const keys = Object.keys(b);
  const same = (x, y) =>
    Object.is(x, y) || (typeof x === "object" && JSON.stringify(x) === JSON.stringify(y));
  return keys.length === Object.keys(a).length && keys.every((k) => same(a[k], b[k]));
}

/**
 * The notifications of `state` with `items` merged in: by id, newest first,
 * at most `maxItems`. Read is one-way: whichever copy knows an item was read
 * wins. Returns {notifications, highestId}.
 */
export function merged(state, items, maxItems) {
  const byId = new Map(state.notifications.map((n) => [n.id, n]));
  let highestId = state.highestId;
  for (const item of items) {
    const old = byId.get(item.id);
    const next = { ...old, ...item, read_at: item.read_at ?? old?.read_at ?? null };
    byId.set(item.id, old && sameItem(old, next) ? old : next);
    if (item.id > highestId) highestId = item.id;
  }
  const list = [...byId.values()].sort((a, b) => b.id - a.id).slice(0, maxItems);
  return { notifications: sameList(state, list), highestId };
}

/**
 * The notifications another tab relayed, with this tab's objects kept for
 * the items that say the same (and its array, when they all do).
 */
export function mirrored(state, notifications) {
  const byId = new Map(state.notifications.map((n) => [n.id, n]));
  const list = notifications.map((n) => {
    const old = byId.get(n.id);
    return old && sameItem(old, n) ? old : n;
  });
  return sameList(state, list);
}

/** The notifications array of `state` if `list` holds the same objects, else `list`. */
function sameList(state, list) {
  const old = state.notifications;
  const same = list.length === old.length && list.every((n, i) => n === old[i]);
  return same ? old : list;
}

/**
 * The patch for `notifications` (set only if its length or an item changed)
 * and the server's `unreadCount`, when it sent one.
 */
function patchOf(state, notifications, unreadCount) {
  const changed =
    notifications.length !== state.notifications.length ||
    notifications.some((n, i) => n !== state.notifications[i]);
  const patch = changed ? { notifications } : {};
  if (typeof unreadCount === "number") patch.unreadCount = unreadCount;
  return patch;
}

/** The items of `ids` with `read_at` set to `readAt`, where it differs in being null. */
function withReadAt(state, ids, readAt, unreadCount) {
  const set = new Set(ids);
  const notifications = state.notifications.map((n) =>
    set.has(n.id) && Boolean(n.read_at) !== Boolean(readAt) ? { ...n, read_at: readAt } : n,
  );
  return patchOf(state, notifications, unreadCount);
}

/** `ids` marked read (those not read already), and the server's count if given. */
export function withRead(state, ids, unreadCount) {
  return withReadAt(state, ids, new Date().toISOString(), unreadCount);
}

/**
 * `ids` marked unread again (a writer set `read_at` back to NULL), with the
 * server's count. The one way an item goes from read to unread: only the
 * server's `unread` frame says so.
 */
export function withUnread(state, ids, unreadCount) {
  return withReadAt(state, ids, null, unreadCount);
}

/** `ids` archived: gone from the list, with the server's count. */
export function withArchived(state, ids, unreadCount) {
  const set = new Set(ids);
  const notifications = state.notifications.filter((n) => !set.has(n.id));
  return patchOf(state, notifications, unreadCount);
}

/**
 * A `snapshot` frame applied: its unread items and, on a resume, the
 * `missed` ones merged; when the snapshot is complete (it lists every
 * unread item), anything else shown unread was read elsewhere meanwhile.
 * Returns {patch, news}: `news` are the missed items this tab had not seen,
 * unread, oldest first: the ones to toast.
 */
export function withSnapshot(state, frame, maxItems) {
  const missed = frame.missed ?? [];
  const unread = frame.notifications ?? [];
  const known = new Set(state.notifications.map((n) => n.id));
  let base = state;
  if (unread.length >= frame.unread_count) {
    const stillUnread = new Set(
      [...unread, ...missed].filter((n) => !n.read_at).map((n) => n.id),
    );
    const readElsewhere = state.notifications
      .filter((n) => !n.read_at && !stillUnread.has(n.id))
      .map((n) => n.id);
    if (readElsewhere.length) base = { ...state, ...withRead(state, readElsewhere) };
  }
  const patch = { ...merged(base, [...unread, ...missed], maxItems) };
  patch.unreadCount = frame.unread_count;
  const resumed = frame.missed !== undefined;
  const news = resumed ? missed.filter((n) => !known.has(n.id) && !n.read_at) : [];
  return { patch, news };
}

/** What a leader relays to the other tabs: the state less its own fields. */
export function shared(state) {
  const { status, notifications, unreadCount, highestId } = state;
  return { status, notifications, unreadCount, highestId };
}
