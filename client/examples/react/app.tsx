// The React example page: pgbell's demo with the hook instead of DOM code.
// `make run` builds it (scripts/build-example.mjs) and pgbell serves it at
// /static/react/index.html, beside the plain demo at /. It is also a typed
// example: `npm run check` type-checks it against the package's declarations.

import { type FormEvent, StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { type Notification, PgBellClient, PgBellError, type Status } from "pgbell-client";
import { PgBellProvider, usePgBell, usePgBellEvent } from "pgbell-client/react";

const STATUS_LABELS: Record<Status, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  polling: "Polling (WebSocket unavailable)",
  offline: "Offline",
};
const TOAST_MS = 6000;
const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function Login({ message }: { message: string }) {
  const { client } = usePgBell();
  const [error, setError] = useState(message);
  const [busy, setBusy] = useState(false);
  useEffect(() => setError(message), [message]);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setBusy(true);
    try {
      await client.login(String(form.get("username")).trim(), String(form.get("password")));
    } catch (err) {
      const wrong = err instanceof PgBellError && err.code === "invalid_credentials";
      setError(wrong ? "Wrong username or password." : String((err as Error).message));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="login">
      <form className="card login-card" onSubmit={submit} noValidate>
        <h1 className="brand">pgbell + React</h1>
        <p className="muted">The same notifications, rendered by a React hook.</p>
        {error && (
          <p className="form-error" data-testid="login-error" role="alert">
            {error}
          </p>
        )}
        <label htmlFor="login-username">Username</label>
        <input id="login-username" name="username" data-testid="login-username" required />
        <label htmlFor="login-password">Password</label>
        <input
          id="login-password"
          name="password"
          type="password"
          data-testid="login-password"
          required
        />
        <button className="btn btn-primary" type="submit" data-testid="login-submit" disabled={busy}>
          Log in
        </button>
      </form>
    </section>
  );
}

function Item({ n, onRead }: { n: Notification; onRead: (id: number) => void }) {
  const read = n.read_at !== null;
  return (
    <li
      className={`note note-${n.priority}`}
      data-testid="notification-item"
      data-id={n.id}
      data-read={String(read)}
    >
      <button type="button" className="note-link" onClick={() => onRead(n.id)}>
        <span className="note-head">
          <span className="note-title">{n.title}</span>
          <span className={`tag tag-${n.priority}`}>{n.priority}</span>
        </span>
        <span className="note-body">{n.body}</span>
        <span className="note-meta">
          {read ? "" : "● "}
          {when.format(new Date(n.created_at))}
        </span>
      </button>
    </li>
  );
}

function Toasts() {
  const [toasts, setToasts] = useState<Notification[]>([]);
  usePgBellEvent("notification", ({ notification }) => {
    setToasts((shown) => [...shown, notification].slice(-4));
    // urgent ones stay until dismissed
    if (notification.priority !== "urgent") {
      setTimeout(() => setToasts((shown) => shown.filter((t) => t !== notification)), TOAST_MS);
    }
  });
  const dismiss = (t: Notification) => setToasts((shown) => shown.filter((s) => s !== t));
  return (
    <div className="toasts" aria-live="polite">
      {toasts.map((t) => (
        <div key={t.id} className={`toast toast-${t.priority}`} data-testid="toast">
          <div className="toast-text">
            <strong>{t.title}</strong>
            <span>{t.body}</span>
          </div>
          <button type="button" className="toast-close" aria-label="Dismiss" onClick={() => dismiss(t)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}

function Bell() {
  const { user, status, notifications, unreadCount, markRead, markAllRead, client } = usePgBell();
  const [problem, setProblem] = useState("");
  const fail = (what: string) => (err: Error) => setProblem(`Could not ${what}: ${err.message}`);

  return (
    <>
      <header className="topbar">
        <span className="brand">pgbell + React</span>
        <span className="status" data-testid="connection-status" data-state={status} role="status">
          <span className="status-dot" aria-hidden="true" />
          <span>{STATUS_LABELS[status]}</span>
        </span>
        <span className="spacer" />
        <span className="bell">
          <span className="visually-hidden">Unread notifications:</span>
          <span
            className={unreadCount === 0 ? "badge badge-zero" : "badge"}
            data-testid="unread-count"
          >
            {unreadCount}
          </span>
        </span>
        <span className="whoami">{user?.username}</span>
        <button type="button" className="btn btn-ghost" data-testid="logout" onClick={() => client.logout()}>
          Log out
        </button>
      </header>
      <main className="layout">
        <section className="card panel" aria-labelledby="notifications-heading">
          <div className="panel-head">
            <h2 id="notifications-heading">Notifications</h2>
            <button
              type="button"
              className="btn btn-ghost"
              data-testid="mark-all-read"
              disabled={unreadCount === 0}
              onClick={() => markAllRead().catch(fail("mark all read"))}
            >
              Mark all read
            </button>
          </div>
          {problem && <p className="form-error">{problem}</p>}
          <ul className="notifications">
            {notifications.map((n) => (
              <Item key={n.id} n={n} onRead={(id) => markRead(id).catch(fail("mark it read"))} />
            ))}
          </ul>
          {notifications.length === 0 && <p className="empty muted">You are all caught up.</p>}
        </section>
      </main>
    </>
  );
}

function App({ restored }: { restored: Promise<boolean> }) {
  const { user } = usePgBell();
  const [ready, setReady] = useState(false);
  const [message, setMessage] = useState("");
  useEffect(() => {
    restored.then(() => setReady(true));
  }, [restored]);
  usePgBellEvent("logout", ({ message }) => setMessage(message));
  usePgBellEvent("login", () => setMessage(""));
  if (user) return <Bell />;
  return ready ? <Login message={message} /> : null;
}

const client = new PgBellClient();
// this tab's session after a reload, or an open tab's; else the login form
const restored = client.restore();
createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <PgBellProvider client={client}>
      <App restored={restored} />
      <Toasts />
    </PgBellProvider>
  </StrictMode>,
);
