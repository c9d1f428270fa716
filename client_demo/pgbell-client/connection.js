// The leader tab's link to pgbell: one WebSocket (docs/protocol.md), with
// reconnects, an app-level ping, and REST polling when sockets keep failing.
//
// It knows nothing of the state: it hands every frame to its host (the
// client) and asks the host to poll. The host provides:
//   socketUrl()            the /ws URL to open now (token, ?since=), or null
//   onFrame(frame, first)  a frame; `first` is the snapshot that made it live
//   onDown()               the socket closed; a reconnect is scheduled
//   onRefused(reason)      closed with 4401: "token_expired" or "unauthorized"
//   poll()                 one REST poll; resolves to whether to poll again

const AUTH_CLOSE = 4401;
const PING_GRACE_MS = 10000; // no frame for ping + this means a dead link

export class Connection {
  constructor(options, host) {
    this.options = options;
    this.host = host;
    this.ws = null;
    this._active = false;
    this._live = false; // this.ws delivered its snapshot
    this._retryTimer = null;
    this._pollTimer = null;
    this._ping = null;
    this._stable = null;
    this._attempt = 0; // backoff exponent
    this._notLive = 0; // consecutive attempts that never reached a snapshot
  }

  /** Whether the REST fallback is running. */
  get polling() {
    return this._pollTimer !== null;
  }

  /** Connect, and keep connecting until stop(). */
  start() {
    this._active = true;
    this._attempt = 0;
    this._notLive = 0;
    this._connect();
  }

  /** Close the socket, stop polling and retrying. */
  stop() {
    this._active = false;
    clearTimeout(this._retryTimer);
    this._stopPolling();
    this._stopTimers();
    const ws = this.ws;
    this.ws = null;
    this._live = false;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onopen = null;
      try {
        ws.close(1000, "logout");
      } catch {
        /* already closed */
      }
    }
  }

  /** Try at once (the browser came back online) instead of waiting out the backoff. */
  connectNow() {
    if (!this._active || this.ws) return;
    clearTimeout(this._retryTimer);
    this._connect();
  }

  /** Send `frame` if the socket is live; returns whether it was sent. */
  send(frame) {
    if (!this._live || this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  _connect() {
    this._retryTimer = null;
    if (!this._active || this.ws) return;
    const url = this.host.socketUrl();
    if (url === null) return this.host.onRefused("unauthorized");
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      return this._closed(null, { code: 1006, reason: "" });
    }
    this.ws = ws;
    this._live = false;
    let lastFrame = Date.now();
    ws.onopen = () => {
      lastFrame = Date.now();
      this._ping = setInterval(() => {
        if (Date.now() - lastFrame > this.options.pingIntervalMs + PING_GRACE_MS) {
          // no frame, not even a pong: the link is dead though TCP says nothing
          this._closed(ws, { code: 4000, reason: "ping timeout" });
          try {
            ws.close();
          } catch {
            /* already closing */
          }
        } else if (ws.readyState === WebSocket.OPEN) {
          ws.send('{"type":"ping"}');
        }
      }, this.options.pingIntervalMs);
    };
    ws.onmessage = (e) => {
      lastFrame = Date.now();
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      const first = frame.type === "snapshot" && !this._live;
      if (first) {
        this._live = true;
        this._notLive = 0;
        this._stopPolling();
        this._stable = setTimeout(() => (this._attempt = 0), this.options.stableAfterMs);
      }
      this.host.onFrame(frame, first);
    };
    ws.onclose = (e) => this._closed(ws, e);
    ws.onerror = () => {}; // a close event always follows
  }

  _stopTimers() {
    clearInterval(this._ping);
    clearTimeout(this._stable);
    this._ping = this._stable = null;
  }

  _closed(ws, event) {
    if (ws && this.ws !== ws) return; // already handled
    const wasLive = this._live;
    this.ws = null;
    this._live = false;
    this._stopTimers();
    if (!this._active) return;
    if (event.code === AUTH_CLOSE) {
      return this.host.onRefused(event.reason === "token_expired" ? "token_expired" : "unauthorized");
    }
    // 1001 (server shutdown), 1013 (slow consumer), network loss: reconnect.
    if (!wasLive) this._notLive += 1;
    if (this._notLive >= this.options.fallbackAfter) this._startPolling();
    this.host.onDown();
    this._scheduleReconnect();
  }

  _scheduleReconnect() {
    clearTimeout(this._retryTimer);
    const ceiling = Math.min(
      this.options.backoffMaxMs,
      this.options.backoffBaseMs * 2 ** Math.min(this._attempt, 16),
    );
    this._attempt += 1;
    // full jitter: anywhere in [0, ceiling), so a restarted server is not
    // hit by every client at the same instant
    this._retryTimer = setTimeout(() => this._connect(), Math.random() * ceiling);
  }

  _startPolling() {
    if (this._pollTimer) return;
    const tick = async () => {
      if (!this._pollTimer) return;
      const again = await this.host.poll();
      if (again && this._pollTimer) this._pollTimer = setTimeout(tick, this.options.pollIntervalMs);
    };
    this._pollTimer = setTimeout(tick, 0);
  }

  _stopPolling() {
    clearTimeout(this._pollTimer);
    this._pollTimer = null;
  }
}
