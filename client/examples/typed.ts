// A typed example of the plain client: what a TypeScript page writes, and
// what `npm run check` type-checks against the package's declarations.

import {
  type Notification,
  PgBellClient,
  PgBellError,
  type State,
  type Status,
} from "pgbell-client";

const bell = new PgBellClient({
  baseUrl: "https://bell.example.com",
  allowedLinkOrigins: ["https://app.example.com"],
  storage: false,
});

function render(state: State): string {
  const unread: readonly Notification[] = state.notifications.filter((n) => n.read_at === null);
  const status: Status = state.status;
  return `${state.user?.username ?? "nobody"}: ${unread.length}/${state.unreadCount} unread, ${status}`;
}

bell.addEventListener("change", (e) => console.log(render(e.detail.state)));
bell.addEventListener("notification", (e) => {
  const n = e.detail.notification;
  const href = bell.actionUrl(n);
  console.log(n.priority === "urgent" ? "!" : "", n.title, href ?? "(not followed)");
});
bell.addEventListener("logout", (e) => {
  if (e.detail.reason !== "logout") console.log(e.detail.message);
});

// a store that compares by reference sees each change: snapshots are new objects
const unsubscribe = bell.subscribe((state) => console.log(state === bell.getSnapshot()));

export async function signIn(username: string, password: string): Promise<void> {
  try {
    const user = await bell.login(username, password);
    console.log(`hello ${user.username}`);
  } catch (err) {
    if (err instanceof PgBellError && err.code === "invalid_credentials") return;
    throw err;
  }
}

export async function readAll(): Promise<number> {
  const first = bell.state.notifications[0];
  if (first) await bell.markRead(first.id);
  const updated: number = await bell.markAllRead();
  unsubscribe();
  return updated;
}

export function fromYourApp(token: string, expiresIn: number): boolean {
  return bell.useToken(token, { user: { id: "42", username: "ada" }, expiresIn });
}
