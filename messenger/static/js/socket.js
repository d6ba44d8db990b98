// A WebSocket that authenticates in its first frame, keeps a heartbeat, re-authenticates after a
// token refresh, and reconnects with exponential backoff, resuming from the last sequence seen.

const PING = '{"type":"ping"}';
const HEARTBEAT_MS = 30_000;
// Close codes after which reconnecting cannot help (see messenger/README.md).
const FATAL = { 4003: "session revoked", 4004: "not a member", 4010: "account deleted" };

export class Channel extends EventTarget {
  constructor(path, session, { resume = () => undefined } = {}) {
    super();
    this.path = path;
    this.session = session;
    this.resume = resume;
    this.attempt = 0;
    this.ws = null;
    this.ready = false;
    this.stopped = false;
    this.outbox = [];
    this.onToken = () => this.reauth();
    session.addEventListener("token", this.onToken);
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${this.path}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    this.ready = false;
    ws.onopen = () => {
      const frame = { type: "auth", token: this.session.token };
      const since = this.resume();
      if (since !== undefined) frame.since = since;
      ws.send(JSON.stringify(frame));
      this.beat = setInterval(() => ws.readyState === 1 && ws.send(PING), HEARTBEAT_MS);
    };
    ws.onmessage = (ev) => {
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      if (frame.type === "pong") return;
      if (frame.type === "welcome" || frame.type === "roster") {
        this.attempt = 0;
        this.ready = true;
        this.status("connected");
        const queued = this.outbox.splice(0);
        queued.forEach((f) => this.send(f));
      }
      this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
    };
    ws.onclose = (ev) => {
      clearInterval(this.beat);
      this.ready = false;
      if (this.stopped) return;
      if (FATAL[ev.code]) {
        this.status(`closed: ${FATAL[ev.code]}`);
        this.dispatchEvent(new CustomEvent("fatal", { detail: { code: ev.code, reason: ev.reason } }));
        return;
      }
      if (ev.code === 4002 || ev.code === 4001) {
        // Token lapsed or refused: refresh first (the session shows its own dialog if that fails).
        this.session.refresh().then(() => this.retry(), () => {});
        return;
      }
      this.retry();
    };
  }

  retry() {
    const delay = Math.min(15_000, 500 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt += 1;
    this.status(`reconnecting in ${Math.round(delay / 1000)} s`);
    setTimeout(() => this.connect(), delay);
  }

  status(text) { this.dispatchEvent(new CustomEvent("status", { detail: text })); }

  send(frame) {
    if (this.ws && this.ws.readyState === 1 && this.ready) { this.ws.send(JSON.stringify(frame)); return true; }
    this.outbox.push(frame);
    return false;
  }

  reauth() {
    if (this.ws && this.ws.readyState === 1 && this.ready) {
      this.ws.send(JSON.stringify({ type: "auth", token: this.session.token }));
    }
  }

  close() {
    this.stopped = true;
    this.session.removeEventListener("token", this.onToken);
    clearInterval(this.beat);
    if (this.ws) this.ws.close(1000, "closed by user");
  }
}
