// The admin page: hourly charts from GET /api/admin/stats and the audit download from
// GET /api/admin/audit, both with the ADMIN_TOKEN as bearer.  The token stays in this page's memory.
const TITLES = {
  logins: "Sign-ins", loginFailures: "Failed sign-ins", messages: "Messages sent",
  rateLimited: "Rate-limit hits", aiInvocations: "AI invocations",
};
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// One bar chart: a bar per hour, the total and the peak in the title, hour labels every few bars.
export function chart(name, hours, counts) {
  const width = 900, height = 160, left = 36, bottom = 20, top = 8;
  const peak = Math.max(1, ...counts);
  const step = (width - left) / Math.max(1, counts.length);
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
                          "aria-label": `${TITLES[name] || name} per hour` });
  svg.append(el("line", { class: "axis", x1: left, y1: height - bottom, x2: width, y2: height - bottom }));
  svg.append(el("text", { x: 2, y: top + 8 }, String(peak)));
  svg.append(el("text", { x: 2, y: height - bottom }, "0"));
  const every = Math.ceil(counts.length / 12);
  counts.forEach((n, i) => {
    const h = Math.round((n / peak) * (height - bottom - top));
    const bar = el("rect", { class: "bar", x: left + i * step + 1, y: height - bottom - h,
                             width: Math.max(1, step - 2), height: h, "data-count": n });
    bar.append(el("title", {}, `${hours[i]}: ${n}`));
    svg.append(bar);
    if (i % every === 0) {
      svg.append(el("text", { x: left + i * step + 1, y: height - 6 }, hours[i].slice(11, 16)));
    }
  });
  const box = document.createElement("div");
  box.className = "chart";
  box.dataset.series = name;
  const title = document.createElement("h2");
  const total = counts.reduce((a, b) => a + b, 0);
  title.textContent = `${TITLES[name] || name}: ${total} (peak ${Math.max(0, ...counts)} an hour)`;
  box.append(title, svg);
  return box;
}

async function call(path) {
  const resp = await fetch(path, { headers: { authorization: `Bearer ${$("admin-token").value}` } });
  if (!resp.ok) {
    let message = `HTTP ${resp.status}`;
    try { message = (await resp.json()).error.message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return resp;
}

async function load(event) {
  event.preventDefault();
  $("admin-error").textContent = "";
  try {
    const body = await (await call(`/api/admin/stats?hours=${$("admin-hours").value}`)).json();
    const { hours, series, source } = body.data;
    $("charts").replaceChildren(...Object.keys(TITLES).map((name) => chart(name, hours, series[name] || [])));
    $("admin-note").textContent = `UTC hours; Analytics Engine SQL API (${source}).`;
  } catch (error) {
    $("charts").replaceChildren();
    $("admin-error").textContent = error.message;
  }
}

async function download() {
  $("admin-error").textContent = "";
  try {
    // An export is cut at the server's record cap: follow x-audit-next-from until it is whole. The
    // next part starts at the last millisecond sent, so lines from that millisecond come twice: drop them.
    const lines = [];
    let from = null;
    let boundary = new Set();
    for (let part = 0; part < 1000; part += 1) {
      const resp = await call(from === null ? "/api/admin/audit" : `/api/admin/audit?from=${from}`);
      const fresh = (await resp.text()).split("\n").filter((line) => line && !boundary.has(line));
      lines.push(...fresh);
      const next = resp.headers.get("x-audit-next-from");
      if (next === null) break;
      boundary = new Set(fresh.filter((line) => {
        try { return String(JSON.parse(line).ts) === next; } catch (_) { return false; }
      }));
      from = next;
    }
    const text = lines.map((line) => line + "\n").join("");
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" }));
    link.download = "audit.ndjson";
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  } catch (error) {
    $("admin-error").textContent = error.message;
  }
}

if (typeof document !== "undefined" && $("admin-form")) {
  $("admin-form").addEventListener("submit", load);
  $("admin-audit").addEventListener("click", download);
}
