// What the leader tab makes of what pgbell sends: socket frames
// (docs/protocol.md) and, in the fallback, REST polls, turned into new
// snapshots of the client's state and `notification` events.
//
// Functions of the client (pgbell-client.js), apart so that each module
// keeps one job; they use its `_state`, `_update`, `_fetch`, `_live` and
// `_post`.

import { PgBellError } from "./rest.js";
import { merged, withArchived, withRead, withSnapshot, withUnread } from "./state.js";

/** Apply one socket frame; `first` is the snapshot that made the socket live. */
export function applyFrame(client, frame, first) {
  const max = client.options.maxItems;
  switch (frame.type) {
    case "snapshot": {
      const { patch, news } = withSnapshot(client._state, frame, max);
      client._update(first ? { ...patch, status: "live" } : patch);
      // Items committed while we were away are news: toast them.
      for (const n of news) client._live(n);
      if (frame.missed === undefined || frame.missed_truncated) refreshList(client);
      break;
    }
    case "notification": {
      const isNew = !client._state.notifications.some((n) => n.id === frame.notification.id);
      const items = merged(client._state, [frame.notification], max);
      client._update({ ...items, unreadCount: frame.unread_count });
      if (isNew) client._live(frame.notification);
      break;
    }
    case "read":
      for (const id of frame.ids) client._pendingReads.delete(id);
      client._update(withRead(client._state, frame.ids, frame.unread_count));
      break;
    case "unread": // a writer set read_at back to NULL (extension)
      client._update(withUnread(client._state, frame.ids, frame.unread_count));
      break;
    case "archived": // archived over REST or by a writer (extension)
      client._update(withArchived(client._state, frame.ids, frame.unread_count));
      break;
    case "error":
      // A read the server refused over the socket (too many a second, or
      // the database was away) was already shown as read: make it true.
      if (["rate_limited", "unavailable"].includes(frame.error?.code)) retryReads(client);
      break;
  }
}

/** One poll of the REST fallback; resolves to whether to poll again. */
export async function poll(client, stillPolling) {
  try {
    const body = await client._fetch("GET", `/notifications?limit=${client.options.listLimit}`);
    if (!stillPolling() || client._state.status === "live") return false;
    const fresh = body.items.filter((n) => n.id > client._state.highestId);
    // the first answer is the list as it is, not news
    const first = client._state.status !== "polling" && client._state.highestId === 0;
    const items = merged(client._state, body.items, client.options.maxItems);
    client._update({ ...items, unreadCount: body.unread_count, status: "polling" });
    if (!first) for (const n of fresh.reverse()) if (!n.read_at) client._live(n);
  } catch (err) {
    if (err instanceof PgBellError && err.status === 401) return false; // handled
    if (client._state.status === "polling") client._update({ status: "reconnecting" });
  }
  return true;
}

/** Mark the unconfirmed socket reads read over REST instead. */
async function retryReads(client) {
  const ids = [...client._pendingReads];
  client._pendingReads.clear();
  for (const id of ids) {
    try {
      const body = await client._fetch("POST", `/notifications/${encodeURIComponent(id)}/read`);
      client._update(withRead(client._state, [id], body.unread_count));
      client._post({ type: "read", ids: [id], unread_count: body.unread_count });
    } catch (err) {
      client._emit("error", { error: err });
    }
  }
}

/**
 * The most recent items, read ones included: the snapshot only has unread.
 * An unread item the list does not know yet was committed after the
 * snapshot: its own frame brings it, with its `notification` event, so the
 * answer does not add it first (the frame would then find it known, and
 * the page would never toast it).
 */
async function refreshList(client) {
  try {
    const body = await client._fetch("GET", `/notifications?limit=${client.options.listLimit}`);
    const known = new Set(client._state.notifications.map((n) => n.id));
    const items = body.items.filter((n) => n.read_at || known.has(n.id));
    client._update(merged(client._state, items, client.options.maxItems));
  } catch {
    // the list stays as the snapshot left it
  }
}
