// HTTP API client: the JSON envelope, the session (tokens), and refresh before expiry.

const STORE = "cfm.session";
const REFRESH_MARGIN_MS = 60_000;

export class ApiError extends Error {
  constructor(code, message, status) { super(message); this.code = code; this.status = status; }
}

function lifetimeMs(token) {
  // The JWT's own exp - iat: independent of any clock skew between browser and server.
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return (payload.exp - payload.iat) * 1000;
  } catch { return 20 * 60 * 1000; }
}

// The cross-tab handoff of rotated tokens. localStorage alone is not enough: each tab reads a cached
// copy that catches up with other tabs' writes asynchronously, so a tab taking the refresh lock right
// after another released it could still see the spent token and present it (a replay, which revokes
// the session). A committed IndexedDB transaction is seen by every later one, in any tab.
const shared = {
  db: null,
  open() {
    if (!this.db) {
      this.db = new Promise((resolve) => {
        if (!window.indexedDB) return resolve(null);
        const req = indexedDB.open("cfm", 1);
        req.onupgradeneeded = () => req.result.createObjectStore("session");
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => resolve(null); // storage disabled: localStorage is all there is
      });
    }
    return this.db;
  },
  async run(mode, op) {
    const db = await this.open();
    if (!db) return undefined;
    return new Promise((resolve, reject) => {
      const tx = db.transaction("session", mode);
      const req = op(tx.objectStore("session"));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
  },
  read() { return this.run("readonly", (s) => s.get(STORE)); },
  write(data) { return this.run("readwrite", (s) => (data ? s.put(data, STORE) : s.delete(STORE))); },
};

export class Session extends EventTarget {
  constructor() {
    super();
    this.data = JSON.parse(localStorage.getItem(STORE) || "null");
    this.timer = null;
    this.refreshing = null;
    // Tabs share one session: when another tab rotates the refresh token, adopt its tokens (the old
    // refresh token is spent, and presenting it again would revoke the session as a replay).
    window.addEventListener("storage", (e) => {
      if (e.key !== STORE || !e.newValue || !this.data) return;
      const other = JSON.parse(e.newValue);
      if (other.sessionId === this.data.sessionId && other.refreshToken !== this.data.refreshToken) this.adopt(other);
    });
  }
  get token() { return this.data && this.data.accessToken; }
  get user() { return this.data && this.data.user; }
  get signedIn() { return !!this.data; }

  save(data) {
    data.receivedAt = Date.now();
    this.data = data;
    localStorage.setItem(STORE, JSON.stringify(data));
    const written = shared.write(data).catch(() => {});
    this.schedule();
    this.dispatchEvent(new CustomEvent("token", { detail: data.accessToken }));
    return written;
  }
  adopt(data) {
    this.data = data;
    this.schedule();
    this.dispatchEvent(new CustomEvent("token", { detail: data.accessToken }));
  }
  clear() {
    clearTimeout(this.timer);
    this.data = null;
    localStorage.removeItem(STORE);
    shared.write(null).catch(() => {});
  }
  schedule() {
    clearTimeout(this.timer);
    if (!this.data) return;
    const due = this.data.receivedAt + lifetimeMs(this.data.accessToken) - REFRESH_MARGIN_MS - Date.now();
    this.timer = setTimeout(() => this.refresh().catch(() => {}), Math.max(0, due));
  }
  expired(reason) {
    this.clear();
    this.dispatchEvent(new CustomEvent("expired", { detail: reason }));
  }

  async refresh() {
    if (this.refreshing) return this.refreshing;
    const rotate = async () => {
      // Under a cross-tab lock, and only if no other tab rotated meanwhile (else adopt its tokens).
      let stored = await shared.read().catch(() => undefined);
      if (stored === undefined) stored = JSON.parse(localStorage.getItem(STORE) || "null");
      if (stored && stored.sessionId === this.data.sessionId && stored.refreshToken !== this.data.refreshToken) {
        this.adopt(stored);
        return stored.accessToken;
      }
      const data = await call("POST", "/api/auth/refresh", { refreshToken: this.data.refreshToken });
      await this.save(data); // handed over before the lock is released
      return data.accessToken;
    };
    this.refreshing = (async () => {
      try {
        return navigator.locks ? await navigator.locks.request("cfm.refresh", rotate) : await rotate();
      } catch (e) {
        if (e.status === 401) this.expired("Your session has expired. Please sign in again.");
        else setTimeout(() => this.refresh().catch(() => {}), 5000); // network trouble: try again soon
        throw e;
      } finally { this.refreshing = null; }
    })();
    return this.refreshing;
  }

  async api(method, path, body) {
    try {
      return await call(method, path, body, this.token);
    } catch (e) {
      if (e.code === "auth_expired" && this.data) {
        await this.refresh();
        return call(method, path, body, this.token);
      }
      if (e.code === "session_revoked") this.expired("This session was signed out.");
      throw e;
    }
  }
}

export async function call(method, path, body, token) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers["authorization"] = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) { throw new ApiError("network", "The server cannot be reached.", 0); }
  let env;
  try { env = await resp.json(); } catch { throw new ApiError("internal", `HTTP ${resp.status}`, resp.status); }
  if (!env.ok) throw new ApiError(env.error.code, env.error.message, resp.status);
  return env.data;
}
