// CF Messenger web client: sign-in, buddy list with presence and unread badges, chat windows.

import { Session, call } from "./api.js";
import { Channel } from "./socket.js";
import { ChatWindow } from "./chat.js";
import { loadEmoticons, render } from "./emoticons.js";
import "./rum.js";

const $ = (sel) => document.querySelector(sel);
const session = new Session();
const windows = new Map(); // room -> ChatWindow
let presence = null;
let buddies = { bots: [], rooms: [], online: [], offline: [] };
const unread = new Map(); // room -> count

function show(view) {
  $("#signin").hidden = view !== "signin";
  $("#app").hidden = view !== "app";
}

// -- sign in ---------------------------------------------------------------------------------------

let registering = false;
$("#toggle-register").onclick = () => {
  registering = !registering;
  document.querySelector(".register-only").hidden = !registering;
  $("#signin-submit").textContent = registering ? "Create account" : "Sign in";
  $("#toggle-register").textContent = registering ? "I have an account" : "Create an account";
};

$("#signin-form").onsubmit = async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  const body = { username: form.get("username").trim().toLowerCase(), password: form.get("password") };
  if (registering && form.get("displayName")) body.displayName = form.get("displayName");
  $("#signin-error").textContent = "";
  try {
    const data = await call("POST", registering ? "/api/auth/register" : "/api/auth/login", body);
    session.save(data);
    e.target.reset();
    await start();
  } catch (err) {
    $("#signin-error").textContent = err.message;
  }
};

session.addEventListener("expired", (e) => {
  stop();
  $("#expired-reason").textContent = e.detail;
  const dialog = $("#expired");
  if (!dialog.open) dialog.showModal();
});
$("#expired-signin").onclick = () => { $("#expired").close(); show("signin"); };

async function signOut(everywhere) {
  try { await session.api("POST", "/api/auth/logout", { everywhere }); } catch { /* signing out anyway */ }
  session.clear();
  stop();
  show("signin");
}
$("#signout").onclick = () => signOut(false);
$("#signout-all").onclick = () => signOut(true);

// -- the signed-in app ---------------------------------------------------------------------------------

async function start() {
  show("app");
  session.schedule();
  await loadEmoticons(call);
  $("#me-name").textContent = session.user.displayName;
  buddies = await session.api("GET", "/api/users");
  for (const group of ["online", "offline"]) for (const b of buddies[group]) if (b.unread) unread.set(b.room, b.unread);
  renderBuddies();
  presence = new Channel("/ws/presence", session);
  presence.addEventListener("frame", (e) => presenceFrame(e.detail));
  presence.addEventListener("fatal", (e) => session.expired(
    e.detail.code === 4010 ? "This account was deleted." : "This session was signed out."));
  presence.addEventListener("status", (e) => { $("#conn-state").textContent = e.detail === "connected" ? "" : e.detail; });
}

function stop() {
  if (presence) presence.close();
  presence = null;
  for (const w of windows.values()) w.close();
  windows.clear();
}

function presenceFrame(f) {
  if (f.type === "roster") {
    $("#me-state").value = f.you.status === "offline" ? "online" : f.you.status;
    $("#me-message").value = f.you.message || "";
    for (const u of f.users) updateBuddy(u);
    // DMs that arrived while we were away: open their windows (the room replays them once).
    for (const [room, info] of Object.entries(f.inbox || {})) {
      unread.set(room, info.unread);
      openRoom(room, info.name || info.from, true, info.firstSeq - 1);
    }
    renderBuddies();
  } else if (f.type === "presence") {
    if (f.user.id === session.user.id) { $("#me-dot").className = `dot ${f.user.status}`; return; }
    updateBuddy(f.user);
    renderBuddies();
  } else if (f.type === "inbox") {
    if (!windows.has(f.room)) {
      unread.set(f.room, f.unread);
      openRoom(f.room, f.name || f.from, true, f.seq - 1);
      renderBuddies();
    }
  }
}

function updateBuddy(u) {
  if (u.bot || u.id === session.user.id) return;
  const all = [...buddies.online, ...buddies.offline];
  let b = all.find((x) => x.id === u.id);
  if (!b) { if (!u.deleted) reloadBuddies(); return; } // an account created since we loaded the list
  if (u.deleted) { buddies.online = buddies.online.filter((x) => x.id !== u.id); buddies.offline = buddies.offline.filter((x) => x.id !== u.id); return; }
  b.status = u.status;
  b.message = u.message || "";
  if (u.name) b.displayName = u.name;
  buddies.online = all.filter((x) => x.status !== "offline");
  buddies.offline = all.filter((x) => x.status === "offline");
}

let reloading = null;
function reloadBuddies() {
  // One reload at a time (a burst of new users costs one request), then the list is drawn again.
  if (reloading) return;
  reloading = setTimeout(async () => {
    try {
      const fresh = await session.api("GET", "/api/users");
      buddies = fresh;
      renderBuddies();
    } catch { /* the next presence frame tries again */ }
    reloading = null;
  }, 200);
}

function renderBuddies() {
  const root = $("#buddy-groups");
  root.replaceChildren();
  const groups = [["Bots", buddies.bots], ["Rooms", buddies.rooms], ["Online", buddies.online], ["Offline", buddies.offline]];
  for (const [title, list] of groups) {
    const g = document.createElement("div");
    g.className = "group";
    const h = document.createElement("h3");
    h.textContent = `${title} (${list.length})`;
    g.append(h);
    for (const b of list) {
      const row = document.createElement("div");
      row.className = "buddy";
      const room = b.room;
      const dot = document.createElement("span");
      dot.className = `dot ${b.title ? "room" : b.status}`;
      const name = document.createElement("span");
      name.textContent = b.title || b.displayName;
      const psm = document.createElement("span");
      psm.className = "psm";
      if (b.message) psm.append(render(b.message));
      row.append(dot, name, psm);
      const n = unread.get(room);
      if (n) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = n;
        row.append(badge);
      }
      row.onclick = () => openRoom(room, b.title || b.displayName, false);
      g.append(row);
    }
    root.append(g);
  }
}

function openRoom(room, title, background, since) {
  let w = windows.get(room);
  if (!w) {
    w = new ChatWindow({
      room, title, session, container: $("#windows"), isDm: room.startsWith("dm_"),
      onRead: (r) => { if (unread.delete(r)) renderBuddies(); },
      onClose: (win) => windows.delete(win.room), since,
    });
    windows.set(room, w);
  }
  if (!background) w.focus();
}

$("#me-state").onchange = (e) => presence && presence.send({ type: "status", state: e.target.value });
$("#me-message").onchange = (e) => presence && presence.send({ type: "status", message: e.target.value.slice(0, 128) });

if (session.signedIn) {
  // A stored session: refresh first so we never start on a stale access token.
  session.refresh().then(start, () => show("signin"));
} else {
  show("signin");
}
