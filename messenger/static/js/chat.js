// One chat window: a room socket, its log (by sequence, so replays never duplicate), pending
// sends (resent with the same client id after a reconnect), receipts, typing, nudges and winks.

import { Channel } from "./socket.js";
import { emoticonTable, render } from "./emoticons.js";

const WINKS = { wave: "\u{1F44B}", kiss: "\u{1F48B}", laugh: "\u{1F923}", heart: "\u{1F496}", dance: "\u{1F483}" };
const TYPING_EVERY_MS = 2000;

const DELETED_TEXT = "(message deleted)";

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

export class ChatWindow {
  constructor({ room, title, session, container, isDm, onRead, onClose, since }) {
    this.room = room;
    this.session = session;
    this.isDm = isDm;
    this.onRead = onRead;
    this.lastSeq = 0;          // highest sequence seen: resume point
    this.oldest = null;        // for paging history backwards
    this.rows = new Map();     // seq -> element
    this.pending = new Map();  // cid -> {frame, element}
    this.marks = {};           // receipts: user -> {delivered, read}
    this.typers = new Map();
    this.lastTyping = 0;
    this.root = this.build(title, container, onClose);
    // First connect: replay from `since` when we know what we missed (offline DMs), else a history
    // page; every reconnect: exactly the gap after the last sequence seen.
    this.channel = new Channel(`/ws/room/${encodeURIComponent(room)}`, session, {
      resume: () => (this.lastSeq > 0 ? this.lastSeq : since),
    });
    this.initialSince = since;
    this.channel.addEventListener("frame", (e) => this.frame(e.detail));
    this.channel.addEventListener("status", (e) => { this.statusEl.textContent = e.detail === "connected" ? "" : e.detail; });
    this.channel.addEventListener("fatal", (e) => this.system(`Disconnected: ${e.detail.reason}`));
    document.addEventListener("visibilitychange", () => this.markRead());
  }

  build(title, container, onClose) {
    const root = el("article", "chat");
    root.dataset.room = this.room;
    const head = el("header");
    head.append(el("span", "title", title));
    this.statusEl = el("span", "conn");
    head.append(this.statusEl);
    const x = el("button", "link", "\u2715");
    x.title = "Close";
    x.onclick = () => { this.close(); onClose(this); };
    head.append(x);
    this.log = el("div", "log");
    const more = el("button", "link more", "Load older messages");
    more.onclick = () => this.channel.send({ type: "history", before: this.oldest || this.lastSeq + 1, limit: 30 });
    this.log.append(more);
    this.typingEl = el("div", "typing");
    const tools = el("div", "tools");
    const emo = el("button", "", "\u263A");
    emo.title = "Emoticons";
    emo.onclick = () => this.togglePicker(tools);
    const nudge = el("button", "", "Nudge");
    nudge.onclick = () => this.sendFrame({ kind: "nudge" });
    const wink = el("select");
    wink.append(new Option("Wink\u2026", ""));
    Object.keys(WINKS).forEach((w) => wink.append(new Option(`${WINKS[w]} ${w}`, w)));
    wink.onchange = () => { if (wink.value) this.sendFrame({ kind: "wink", wink: wink.value }); wink.value = ""; };
    tools.append(emo, nudge, wink);
    const form = el("form");
    this.input = el("textarea");
    this.input.maxLength = 2048;
    this.input.placeholder = "Type a message (Enter to send)";
    this.input.addEventListener("input", () => this.typing());
    this.input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); } });
    form.append(this.input, el("button", "", "Send"));
    form.onsubmit = (e) => {
      e.preventDefault();
      const text = this.input.value.trim();
      if (!text) return;
      this.sendFrame({ kind: "text", text });
      this.input.value = "";
    };
    root.append(head, this.log, this.typingEl, tools, form);
    root.addEventListener("click", () => this.markRead());
    container.append(root);
    return root;
  }

  togglePicker(tools) {
    const open = tools.querySelector(".picker");
    if (open) { open.remove(); return; }
    const picker = el("div", "picker");
    const seen = new Set();
    for (const e of emoticonTable()) {
      if (seen.has(e.image)) continue;
      seen.add(e.image);
      const img = el("img", "emo");
      img.src = e.image; img.alt = e.code; img.title = `${e.label} ${e.code}`;
      img.onclick = () => { this.input.value += e.code; picker.remove(); this.input.focus(); };
      picker.append(img);
    }
    tools.append(picker);
  }

  sendFrame(content) {
    const cid = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    const frame = { type: "send", cid, ...content };
    const row = this.row({ from: this.session.user.id, name: this.session.user.displayName, ...content, pending: true });
    this.pending.set(cid, { frame, row });
    this.channel.send(frame);
  }

  typing() {
    const now = Date.now();
    if (now - this.lastTyping > TYPING_EVERY_MS) { this.lastTyping = now; this.channel.send({ type: "typing" }); }
  }

  frame(f) {
    switch (f.type) {
      case "welcome":
        this.marks = f.receipts || {};
        if (f.gone && !this.goneShown) { this.goneShown = true; this.system("This account was deleted: nothing more can be sent here."); }
        // Resend what was never acknowledged: same client ids, so the room deduplicates.
        for (const { frame } of this.pending.values()) this.channel.send(frame);
        if (this.lastSeq === 0 && this.initialSince === undefined && f.lastSeq > 0) this.channel.send({ type: "history", limit: 30 });
        break;
      case "sync": f.messages.forEach((m) => this.add(m)); if (f.more) this.channel.send({ type: "sync", since: this.lastSeq }); this.afterNew(); break;
      case "history": f.messages.slice().reverse().forEach((m) => this.add(m, true)); this.afterNew(); break;
      case "ack": this.acked(f); break;
      case "msg": this.add(f.message, false, true); this.afterNew(); break;
      case "typing": this.showTyping(f); break;
      case "receipt": this.marks[f.user] = { delivered: f.delivered, read: f.read }; this.refreshStates(); break;
      case "redact": f.seqs.forEach((seq) => this.redact(seq)); break;
      case "join": case "leave": break;
      case "error": this.system(f.code === "rate_limited" ? `Slow down: ${f.message}` : `${f.code}: ${f.message}`); if (f.cid) this.failed(f.cid); break;
      default: break;
    }
  }

  acked(f) {
    const p = this.pending.get(f.cid);
    if (!p) return;
    this.pending.delete(f.cid);
    if (this.rows.has(f.seq)) { p.row.remove(); return; }
    p.row.classList.remove("pending");
    p.row.dataset.seq = f.seq;
    this.rows.set(f.seq, p.row);
    this.lastSeq = Math.max(this.lastSeq, f.seq);
    this.refreshStates();
  }

  failed(cid) {
    const p = this.pending.get(cid);
    if (p) { this.pending.delete(cid); p.row.remove(); }
  }

  add(m, older = false, live = false) {
    if (this.rows.has(m.seq)) return;
    const row = this.row(m, older);
    row.dataset.seq = m.seq;
    this.rows.set(m.seq, row);
    this.lastSeq = Math.max(this.lastSeq, m.seq);
    this.oldest = this.oldest === null ? m.seq : Math.min(this.oldest, m.seq);
    if (live && m.kind === "nudge" && m.from !== this.session.user.id) this.shake();
    if (m.from !== this.session.user.id) this.typers.delete(m.from), this.renderTyping();
  }

  row(m, older = false) {
    const row = el("div", `msg ${m.kind}${m.from === this.session.user.id ? " mine" : ""}${m.pending ? " pending" : ""}`);
    const who = el("span", "who", `${m.name || m.from}: `);
    if (m.unreadable) { row.append(who, el("em", "unreadable", "(this message cannot be decrypted)")); }
    else if (m.kind === "text") { row.append(who, render(m.text)); }
    else if (m.kind === "nudge") { row.append(`${m.name || m.from} sent a nudge!`); }
    else if (m.kind === "wink") { row.append(who); row.append(el("div", "wink-big", WINKS[m.wink] || "\u2728")); }
    else if (m.kind === "deleted") { row.append(DELETED_TEXT); }
    row.append(el("span", "state"));
    if (older) this.log.insertBefore(row, this.log.children[1] || null);
    else this.log.append(row);
    this.log.scrollTop = this.log.scrollHeight;
    return row;
  }

  redact(seq) {
    // The author's account was deleted: the message stays in place (same sequence), without author or body.
    const row = this.rows.get(seq);
    if (!row) return;
    row.className = "msg deleted";
    row.replaceChildren(DELETED_TEXT, el("span", "state"));
  }

  system(text) { this.log.append(el("div", "msg system", text)); this.log.scrollTop = this.log.scrollHeight; }

  shake() {
    this.root.classList.remove("shake");
    void this.root.offsetWidth; // restart the animation
    this.root.classList.add("shake");
  }

  afterNew() {
    if (!this.isDm) return;
    // Tell the sender it reached us, and that we read it when the window is visible.
    this.channel.send({ type: "receipt", seq: this.lastSeq, state: "delivered" });
    this.markRead();
  }

  markRead() {
    if (this.lastSeq > 0 && document.visibilityState === "visible" && this.channel.ready && this.isDm) {
      const mine = this.marks[this.session.user.id];
      if (!mine || mine.read < this.lastSeq) this.channel.send({ type: "receipt", seq: this.lastSeq, state: "read" });
      this.onRead(this.room);
    }
  }

  refreshStates() {
    if (!this.isDm) return;
    const me = this.session.user.id;
    const other = Object.keys(this.marks).find((u) => u !== me);
    const marks = other ? this.marks[other] : { delivered: 0, read: 0 };
    for (const [seq, row] of this.rows) {
      if (!row.classList.contains("mine")) continue;
      const state = seq <= marks.read ? "Read" : seq <= marks.delivered ? "Delivered" : "Sent";
      row.querySelector(".state").textContent = state;
    }
  }

  showTyping(f) {
    if (f.user === this.session.user.id) return;
    // Local expiry mirrors the server's 3 s (browser and server clocks need not agree).
    if (f.on) this.typers.set(f.user, { name: f.name || f.user, until: Date.now() + 3500 });
    else this.typers.delete(f.user);
    this.renderTyping();
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.renderTyping(), 3100);
  }

  renderTyping() {
    for (const [u, t] of this.typers) if (t.until < Date.now()) this.typers.delete(u);
    const names = [...this.typers.values()].map((t) => t.name);
    this.typingEl.textContent = names.length ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing\u2026` : "";
  }

  focus() { this.input.focus(); this.markRead(); }
  close() { this.channel.close(); this.root.remove(); }
}
