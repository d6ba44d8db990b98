// Real-user monitoring: LCP, INP and CLS of this page, sent once when it is hidden (no cookie, no
// identity: the worker writes each value to Analytics Engine as it is).

const vitals = {};

function observe(type, onEntries, extra = {}) {
  try {
    new PerformanceObserver((list) => onEntries(list.getEntries())).observe({ type, buffered: true, ...extra });
  } catch { /* a browser without this entry type reports what it has */ }
}

observe("largest-contentful-paint", (entries) => {
  const last = entries[entries.length - 1];
  if (last) vitals.lcp = Math.round(last.startTime);
});
let cls = 0;
observe("layout-shift", (entries) => {
  for (const e of entries) if (!e.hadRecentInput) cls += e.value;
  vitals.cls = Math.round(cls * 10000) / 10000;
});
// INP: the slowest interaction seen (the exact metric is a high percentile; a chat page has few).
observe("event", (entries) => {
  for (const e of entries) if (e.interactionId) vitals.inp = Math.max(vitals.inp || 0, Math.round(e.duration));
}, { durationThreshold: 16 });

let sent = false;
function report() {
  if (sent || document.visibilityState !== "hidden" || !Object.keys(vitals).length) return;
  sent = true;
  const body = JSON.stringify({
    ...(vitals.lcp !== undefined && { lcp: Math.min(vitals.lcp, 600000) }),
    ...(vitals.inp !== undefined && { inp: Math.min(vitals.inp, 60000) }),
    ...(vitals.cls !== undefined && { cls: Math.min(vitals.cls, 100) }),
  });
  if (!navigator.sendBeacon || !navigator.sendBeacon("/api/rum", new Blob([body], { type: "application/json" }))) {
    fetch("/api/rum", { method: "POST", body, headers: { "content-type": "application/json" }, keepalive: true }).catch(() => {});
  }
}
document.addEventListener("visibilitychange", report);
addEventListener("pagehide", report);
