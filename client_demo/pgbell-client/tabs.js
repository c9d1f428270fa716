// The tabs of one browser share one socket: the tab holding the Web Lock is
// the leader, owns the socket (or the REST polling fallback) and relays its
// state over a BroadcastChannel; the other tabs mirror it. When the leader
// tab closes, the browser hands the lock to the next waiting tab.
//
// This module is only the plumbing (the channel and the lock); what the
// messages mean is the client's business (pgbell-client.js).

export class Tabs {
  /** `onMessage(data)` gets every message another tab posts. */
  constructor(options, onMessage) {
    this.options = options;
    this.onMessage = onMessage;
    this.channel = null;
    this._lockAbort = null;
    this._releaseLock = null;
  }

  /**
   * Open the BroadcastChannel once: from then on this tab hears the other
   * tabs, even while it is logged out itself. It is same-origin by
   * construction, so only this site's pages hear it. Returns whether tabs
   * are shared (the option is on and the browser has Web Locks and
   * BroadcastChannel).
   */
  listen() {
    const canShare =
      this.options.crossTab && globalThis.navigator?.locks && globalThis.BroadcastChannel;
    if (canShare && !this.channel) {
      this.channel = new BroadcastChannel(this.options.channelName);
      this.channel.onmessage = (e) => this.onMessage(e.data);
    }
    return this.channel !== null;
  }

  post(message) {
    try {
      this.channel?.postMessage(message);
    } catch {
      // a closed channel, or a message that cannot be cloned: nothing to tell
    }
  }

  /**
   * Wait for the leader lock; once granted, and if `wanted()` still holds,
   * call `onLeader()` and keep the lock until resign() or the tab closes.
   */
  lead(onLeader, wanted) {
    this._lockAbort = new AbortController();
    navigator.locks
      .request(this.options.lockName, { signal: this._lockAbort.signal }, () => {
        if (!wanted()) return undefined;
        // Held until this tab closes or resigns: the browser then hands the
        // lock to the next waiting tab.
        return new Promise((resolve) => {
          this._releaseLock = resolve;
          onLeader();
        });
      })
      .catch(() => {}); // aborted by resign()
  }

  /** Stop waiting for the lock, or give it up. */
  resign() {
    this._lockAbort?.abort();
    this._releaseLock?.();
    this._lockAbort = this._releaseLock = null;
  }

  /** Whether some tab holds the leader lock (is logged in); null when the
   * browser cannot tell. */
  async anyLeader() {
    try {
      const { held = [] } = await navigator.locks.query();
      return held.some((lock) => lock.name === this.options.lockName);
    } catch {
      return null;
    }
  }
}
