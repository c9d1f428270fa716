// Where a tab keeps its session {token, user, expiresAt}: in memory and in
// its own sessionStorage (so a reload keeps it), never in localStorage,
// where it would outlive the browser session. See docs/client.md, "Where
// the session lives".

/** The configured storage: sessionStorage unless told otherwise; `false` is none. */
export function pickStorage(option) {
  if (option === false) return null;
  if (option) return option;
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null; // a sandboxed frame, or storage blocked by the user
  }
}

/** Older versions kept the session in localStorage: remove what they left. */
export function forgetLegacySession(storage, key) {
  try {
    const legacy = globalThis.localStorage;
    if (legacy && legacy !== storage) legacy.removeItem(key);
  } catch {
    /* no localStorage here: nothing was left in it */
  }
}

/** `value` if it looks like a session {token, user, expiresAt}, else null. */
export function asSession(value) {
  if (!value || typeof value !== "object" || typeof value.token !== "string") return null;
  return { token: value.token, user: value.user ?? null, expiresAt: value.expiresAt ?? null };
}

export function expired(session) {
  return typeof session.expiresAt === "number" && session.expiresAt <= Date.now();
}

/** The session kept in `storage` under `key`, or null. */
export function loadSession(storage, key) {
  try {
    const raw = storage?.getItem(key);
    return raw ? asSession(JSON.parse(raw)) : null;
  } catch {
    return null;
  }
}

export function saveSession(storage, key, session) {
  try {
    storage?.setItem(key, JSON.stringify(session));
  } catch {
    // storage full or blocked: the session lives in memory only
  }
}

export function removeSession(storage, key) {
  try {
    storage?.removeItem(key);
  } catch {
    /* storage unavailable */
  }
}
