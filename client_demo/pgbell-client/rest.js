// pgbell's REST API (docs/protocol.md): one JSON call, its errors as
// PgBellError with the contract's `code`.

/** An error from the REST API, carrying the contract's `code`. */
export class PgBellError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "PgBellError";
    this.status = status;
    this.code = code;
  }
}

/** `path` resolved against `baseUrl`, itself resolved against the page. */
export function apiUrl(baseUrl, path) {
  return new URL(path, new URL(baseUrl || "/", globalThis.location?.href));
}

/**
 * One call: resolves to the JSON body of a 2xx answer; throws PgBellError
 * with the error shape's code and message otherwise (`http_<status>` when
 * the body is not that shape). `token`, when given, is the bearer token.
 */
export async function callApi(baseUrl, method, path, json, token) {
  const headers = { Accept: "application/json" };
  if (json !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(apiUrl(baseUrl, path), {
    method,
    headers,
    // GET /deals/{id} answers HTML to a page load and JSON to us at the
    // same URL; never let the HTTP cache hand one to the other.
    cache: "no-store",
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.ok && body === null) {
    throw new PgBellError(response.status, "invalid_response", "the server did not answer JSON");
  }
  if (!response.ok) {
    const code = body?.error?.code ?? "http_" + response.status;
    const message = body?.error?.message ?? `HTTP ${response.status}`;
    throw new PgBellError(response.status, code, message);
  }
  return body;
}
