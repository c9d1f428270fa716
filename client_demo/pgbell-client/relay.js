// What the tabs of one browser tell each other over the BroadcastChannel
// (./tabs.js carries it). Every message has a `type` and the `userId` of
// the tab that posted it:
//   ask {from}              a tab without a session asks for one
//   session {session, to?}  the answer to an ask, or a login / new token
//   hello                   a tab started: the leader answers with `state`
//   state {state}           the leader's state, after every change
//   notification            a live notification, for the followers' toasts
//   read {ids, unread_count}, auth {reason, message}, logout
//
// A function of the client (pgbell-client.js), apart so that each module
// keeps one job.

import { asSession, expired } from "./session.js";
import { mirrored, shared, withRead } from "./state.js";

/** Act on a message another tab posted. */
export function fromChannel(client, msg) {
  if (!msg) return;
  if (msg.type === "ask") {
    // a tab without a session: hand it ours (it alone takes the answer)
    if (client._running && client._session) {
      client._post({ type: "session", session: client._session, to: msg.from });
    }
    return;
  }
  if (msg.type === "session") {
    // an answer to another tab's ask, or to ours once we have one, is not news
    if (msg.to != null && (msg.to !== client._tabId || client._running)) return;
    const session = asSession(msg.session);
    if (session && !expired(session)) client._useSession(session, false);
    return;
  }
  if (!client._running) return;
  const user = client._state.user;
  if (msg.userId != null && user && msg.userId !== user.id) return;
  switch (msg.type) {
    case "hello":
      if (client._leader) client._post({ type: "state", state: shared(client._state) });
      break;
    case "state":
      if (!client._leader) {
        const { status, unreadCount, highestId } = msg.state;
        const notifications = mirrored(client._state, msg.state.notifications);
        client._update({ status, notifications, unreadCount, highestId, leader: false }, false);
      }
      break;
    case "notification":
      if (!client._leader) client._emit("notification", { notification: msg.notification });
      break;
    case "read":
      client._update(withRead(client._state, msg.ids, msg.unread_count));
      break;
    case "auth":
      client._end({ reason: msg.reason, message: msg.message });
      break;
    case "logout":
      client._end({ reason: "logout", message: "" });
      break;
  }
}
