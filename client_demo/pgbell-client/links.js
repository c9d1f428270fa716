// Which notification links the client follows: the page's own origin and
// the origins the application lists, nothing else (docs/client.md, "Links").

/** The origins of `allowedLinkOrigins`; a wrong entry fails loudly, never widens. */
export function linkOrigins(list) {
  return new Set(
    (list ?? []).map((entry) => {
      let url = null;
      try {
        url = new URL(entry);
      } catch {
        /* not an absolute URL: reported below */
      }
      if (url?.protocol !== "http:" && url?.protocol !== "https:") {
        throw new TypeError(`allowedLinkOrigins: not an http(s) origin: ${entry}`);
      }
      return url.origin;
    }),
  );
}

/**
 * The notification's action_url resolved against the page, as an absolute
 * URL, when it is on the page's own origin or one of `allowed`; else null.
 */
export function followableUrl(notification, allowed) {
  const raw = notification?.action_url;
  if (typeof raw !== "string" || raw === "") return null;
  let url;
  try {
    url = new URL(raw, globalThis.location?.href);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  const own = url.origin === globalThis.location?.origin;
  return own || allowed.has(url.origin) ? url.href : null;
}
