// leadpulse web UI: contact explorer and live feed of actions. Plain
// JavaScript, no dependencies, no build step; served by the admin server.
"use strict";

const $ = (id) => document.getElementById(id);
const SVGNS = "http://www.w3.org/2000/svg";
const FEED_MAX = 200;      // items kept in the feed's DOM list
const FEED_BUFFER = 2000;  // actions kept in memory for re-filtering
const COLORS = ["#2f6fde", "#e67e22", "#16a085", "#8e44ad", "#c0392b", "#2c3e50", "#d4ac0d", "#7f8c8d", "#27ae60", "#e84393"];

// Figures the browser test reads (and anyone curious, in the console).
const lp = (window.__lp = {
  received: 0, rendered: 0, dropped: 0, frames: 0, maxLagMs: 0, lagSamples: [],
  feedMs: 0, // time the page's own feed code ran (parsing and rendering)
  arrivals: {}, // contact -> Date.now() when its first action was received
  shown: {},    // contact -> Date.now() when its first action was rendered in the feed
  connected: false, contactLoaded: null,
});

// --- the token (run with admin_token): asked once, kept for the tab -------
function token() { return sessionStorage.getItem("leadpulse-token") || ""; }
let asking = null;
function askToken() {
  if (!asking) {
    asking = new Promise((resolve) => {
      const d = $("token-dialog");
      $("token-form").onsubmit = () => {
        sessionStorage.setItem("leadpulse-token", $("token").value.trim());
        asking = null;
        resolve();
      };
      d.showModal();
    });
  }
  return asking;
}
function headers() {
  const t = token();
  return t ? { Authorization: "Bearer " + t } : {};
}
async function api(path, opts = {}) {
  for (;;) {
    const r = await fetch(path, { ...opts, headers: { ...headers(), ...(opts.headers || {}) } });
    if (r.status === 401) { sessionStorage.removeItem("leadpulse-token"); await askToken(); continue; }
    let body = null;
    try { body = await r.json(); } catch (_) { /* not JSON */ }
    return { status: r.status, body };
  }
}

// --- small DOM helpers -----------------------------------------------------
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e[k] = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? "" : String(k)));
  return e;
}
function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function table(id, head, rows) {
  const t = $(id);
  t.replaceChildren();
  if (head) t.append(el("tr", {}, ...head.map((h) => el("th", {}, h))));
  if (!rows.length) { t.append(el("tr", {}, el("td", { class: "muted", colspan: String(head ? head.length : 2) }, "none"))); return; }
  for (const r of rows) t.append(el("tr", {}, ...r.map((c) => (c instanceof Node && c.tagName === "TD") ? c : el("td", typeof c === "number" ? { class: "num" } : {}, c))));
}
// Formatters made once: Intl objects are costly to make per call.
const numFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 3 });
const clockFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const fmt = (n) => (n == null ? "—" : numFmt.format(Number(n)));
const when = (s) => (s ? new Date(s).toLocaleString() : "—");
const show = (v) => (v === null || v === undefined ? "null" : typeof v === "object" ? JSON.stringify(v) : typeof v === "number" ? fmt(v) : JSON.stringify(v));

// --- rules version and reload ---------------------------------------------
async function loadRules() {
  const { status, body } = await api("/rules");
  if (status !== 200) { $("rules-version").textContent = (body && body.error) || "unavailable"; return; }
  const v = body.version;
  $("rules-version").textContent = `${v.file} · ${v.hash} · loaded ${when(v.loaded_at)} · ${v.triggers} triggers`;
  $("rules-version").title = "sha-256 of the file (first 12 hex digits)";
  $("reload").disabled = !v.reloadable;
  showReload(body.last_reload);
  fillSelect($("f-trigger"), body.triggers);
  fillSelect($("f-sink"), body.sinks);
  triggers = body.triggers;
}
let triggers = [];
function fillSelect(s, values) {
  const keep = s.value;
  s.replaceChildren(el("option", { value: "" }, "all"), ...values.map((v) => el("option", { value: v }, v)));
  s.value = keep;
}
function showReload(r) {
  const out = $("reload-result");
  out.replaceChildren();
  if (!r) return;
  const cls = r.result === "ok" || r.result === "unchanged" ? "ok" : "bad";
  out.append(el("span", { class: cls }, `last reload (${r.via}, ${when(r.at)}): ${r.result}`));
  const problems = r.problems || (r.error ? [r.error] : []);
  if (problems.length) out.title = problems.join("\n");
  out.dataset.result = r.result;
}
$("reload").onclick = async () => {
  const { body } = await api("/rules/reload", { method: "POST" });
  await loadRules();
  if (body && body.problems) alert("The rules file does not validate; the running rules stay:\n\n" + body.problems.join("\n"));
};

// --- contact explorer -------------------------------------------------------
$("search").onsubmit = (ev) => {
  ev.preventDefault();
  const q = $("q").value.trim();
  if (q) find(q);
};
async function find(q) {
  $("search-status").textContent = "";
  let id = q;
  if (q.includes("@")) {
    const { status, body } = await api("/contacts?email=" + encodeURIComponent(q));
    if (status === 200 && body.ids.length) id = body.ids[0];
    else if (status === 200) { /* perhaps an id with an @: try it */ }
  }
  location.hash = "contact=" + encodeURIComponent(id);
}
window.addEventListener("hashchange", route);
function route() {
  const m = location.hash.match(/^#contact=(.+)$/);
  if (m) loadContact(decodeURIComponent(m[1]));
}
let current = null;
async function loadContact(id) {
  $("q").value = id;
  const { status, body } = await api("/contacts/" + encodeURIComponent(id) + "/timeline");
  if (status !== 200) {
    $("search-status").textContent = (body && body.error) || "error " + status;
    $("contact").hidden = true;
    return;
  }
  current = body;
  $("search-status").textContent = "";
  renderContact(body);
  lp.contactLoaded = id;
}

function renderContact(c) {
  $("contact").hidden = false;
  $("c-title").textContent = c.id + (c.email ? "  ·  " + c.email : "");
  $("c-score").textContent = fmt(c.score);
  $("c-fit").textContent = fmt(c.fit);
  $("c-engagement").textContent = fmt(c.engagement);
  $("c-stage").textContent = c.stage || "—";
  $("c-events").textContent = fmt(c.events);
  $("c-latest").textContent = when(c.latest);
  const rules = c.chart.engagement.map((s) => s.rule);
  const color = (r) => COLORS[rules.indexOf(r) % COLORS.length] || "#999";
  drawChart($("chart"), c.chart.times, c.chart.engagement, c.chart.score, c.chart.fit, color, c.chart.awards, c.recent_firings, false);
  drawChart($("projection"), c.chart.projection_times || [], c.chart.projection || [], c.chart.projection_score || [], c.chart.fit, color, [], [], true);
  $("legend").replaceChildren(
    el("span", {}, el("i", { class: "sw-fit" }), `fit ${fmt(c.chart.fit)} (current traits)`),
    ...rules.map((r) => { const i = el("i"); i.style.background = color(r); return el("span", {}, i, r); }),
    el("span", { class: "muted" }, c.chart.half_life_ms ? `half-life ${dur(c.chart.half_life_ms)}` : "no decay"));
  $("legend").firstChild.firstChild.style.background = "#cfd6e4";

  const pts = [...Object.entries(c.points.engagement).map(([k, v]) => [k, "engagement", v]), ...Object.entries(c.points.fit).map(([k, v]) => [k, "fit", v])];
  table("t-points", ["rule", "kind", "points"], pts);
  table("t-windows", ["window", "value"], Object.entries(c.windows).map(([k, v]) => [k, v]));
  table("t-traits", ["trait", "value"], Object.entries(c.traits).map(([k, v]) => [k, show(v)]));
  table("t-timers", ["trigger", "kind", "due"], c.timers.map((t) => [t.trigger, t.kind, when(t.due)]));
  table("t-triggers", ["trigger", "kind", "fired", "last", ""], c.triggers.map((t) => [
    t.id, t.kind + (t.on ? " (held)" : ""), t.fired, when(t.last_fired),
    el("td", {}, el("button", { class: "link", type: "button", "data-why": t.id, onclick: () => why(c.id, t.id) }, "why?")),
  ]));
  const m = $("merged");
  const merged = c.merged || [];
  m.replaceChildren(
    c.merged_into ? el("div", {}, "merged into ", contactLink(c.merged_into)) : "",
    merged.length ? el("div", {}, ...merged.map((x) => el("div", {}, contactLink(x)))) : el("span", { class: "muted" }, "no anonymous ids merged"));
  table("t-firings", ["at", "trigger", "action", "sink", "score", "message"], c.recent_firings.slice().reverse().map((f) => [when(f.at), f.trigger, f.action, f.sink || "", f.score, f.message || ""]));
  table("t-events", ["at", "type", "event / path", "points", "traits"], c.recent_events.slice().reverse().map((e) => [
    when(e.at), e.type, e.event || e.path || e.name || "", (e.points || []).map((p) => `${p.Rule} ${p.Points > 0 ? "+" : ""}${fmt(p.Points)}`).join(", "), (e.traits || []).join(", ")]));
  if (c.history && c.history !== "events") {
    // ui.history: actions or off: this process does not record events.
    const note = (id) => { const td = $(id).querySelector("td.muted"); if (td) td.textContent = `not recorded (ui.history: ${c.history})`; };
    note("t-events");
    if (c.history === "off") note("t-firings");
  }
  $("why").hidden = true;
}
function contactLink(id) { return el("a", { href: "#contact=" + encodeURIComponent(id) }, id); }
function dur(ms) {
  const d = ms / 86400000;
  return d >= 1 ? `${fmt(d)}d` : `${fmt(ms / 3600000)}h`;
}

// drawChart draws stacked areas per rule (positive points above the fit
// band, negative below zero), the score line, award dots and firing marks.
function drawChart(s, times, series, score, fit, color, awards, firings, dashed) {
  s.replaceChildren();
  const W = 720, H = Number(s.getAttribute("viewBox").split(" ")[3]), L = 44, R = 10, T = 10, B = 20;
  if (!times.length) { s.append(svgText(W / 2, H / 2, "no data", "middle")); return; }
  const t0 = times[0], t1 = times[times.length - 1] === t0 ? t0 + 1 : times[times.length - 1];
  let lo = 0, hi = Math.max(1, ...score);
  const pos = times.map(() => fit), neg = times.map(() => 0);
  const layers = [];
  for (const s2 of series) {
    const top = [], bot = [];
    s2.values.forEach((v, k) => {
      if (v >= 0) { bot.push(pos[k]); pos[k] += v; top.push(pos[k]); } else { top.push(neg[k]); neg[k] += v; bot.push(neg[k]); }
    });
    layers.push({ rule: s2.rule, top, bot });
  }
  hi = Math.max(hi, ...pos); lo = Math.min(lo, ...neg);
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo || 1)) * (H - T - B);
  // axes and ticks
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    s.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e6e9f0" }));
    s.append(svgText(L - 4, y(v) + 3, fmt(Math.round(v * 10) / 10), "end"));
  }
  for (let i = 0; i <= 3; i++) {
    const t = t0 + ((t1 - t0) * i) / 3;
    s.append(svgText(x(t), H - 5, new Date(t).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: dashed ? undefined : "2-digit" }), i === 0 ? "start" : i === 3 ? "end" : "middle"));
  }
  if (fit) s.append(area(times, times.map(() => fit), times.map(() => 0), x, y, "#cfd6e4", "fit"));
  for (const ly of layers) s.append(area(times, ly.top, ly.bot, x, y, color(ly.rule), ly.rule));
  const line = svg("polyline", { points: times.map((t, k) => `${x(t).toFixed(1)},${y(score[k]).toFixed(1)}`).join(" "), fill: "none", stroke: "#1d2433", "stroke-width": "1.6" });
  if (dashed) line.setAttribute("stroke-dasharray", "5 4");
  line.append(svg("title")); line.firstChild.textContent = "score";
  s.append(line);
  for (const f of firings || []) {
    const t = Date.parse(f.at);
    if (t < t0 || t > t1) continue;
    s.append(svg("line", { x1: x(t), x2: x(t), y1: T, y2: H - B, stroke: "#c0392b", "stroke-dasharray": "2 2", class: "firing" }));
    const right = x(t) > W - 120;
    const lab = svgText(x(t) + (right ? -3 : 3), T + 9, f.trigger, right ? "end" : "start"); lab.setAttribute("fill", "#c0392b"); s.append(lab);
  }
  for (const a of awards || []) {
    if (a.at < t0 || a.at > t1) continue;
    const k = nearest(times, a.at);
    const c = svg("circle", { cx: x(a.at), cy: y(score[k]), r: 3, fill: color(a.rule), class: "award" });
    c.append(svg("title")); c.firstChild.textContent = `${a.rule} ${a.points > 0 ? "+" : ""}${a.points} at ${new Date(a.at).toLocaleString()}`;
    s.append(c);
  }
}
function nearest(ts, t) { let k = 0; while (k + 1 < ts.length && ts[k + 1] <= t) k++; return k; }
function area(times, top, bot, x, y, fill, name) {
  const up = times.map((t, k) => `${x(t).toFixed(1)},${y(top[k]).toFixed(1)}`);
  const down = times.map((t, k) => `${x(t).toFixed(1)},${y(bot[k]).toFixed(1)}`).reverse();
  const p = svg("polygon", { points: up.concat(down).join(" "), fill, "fill-opacity": "0.55", stroke: fill, "stroke-width": "0.8", class: "layer" });
  p.append(svg("title")); p.firstChild.textContent = name;
  return p;
}
function svgText(x, y, text, anchor) {
  const t = svg("text", { x, y, "text-anchor": anchor });
  t.textContent = text;
  return t;
}

// --- why didn't it fire? ---------------------------------------------------
async function why(id, trigger) {
  const { status, body } = await api(`/contacts/${encodeURIComponent(id)}/why/${encodeURIComponent(trigger)}`);
  const w = $("why");
  w.hidden = false;
  if (status !== 200) { w.replaceChildren(el("div", { class: "bad" }, (body && body.error) || "error " + status)); return; }
  const v = body;
  const kids = [el("h3", {}, `Why ${v.trigger} (${v.kind})`), el("div", { class: "verdict" }, v.verdict || "nothing holds it back")];
  if (v.condition) {
    kids.push(el("div", {}, "when ", el("code", {}, v.condition), " → ", el("b", { class: v.holds ? "ok" : "bad" }, String(v.holds))));
    kids.push(el("div", {}, ...v.values.map((x) => el("div", {}, el("code", {}, x.name), " = ", el("span", { class: "val" }, show(x.value))))));
    kids.push(el("div", {}, `armed: ${v.armed} (edge-triggered: fires when the condition turns true)`));
  }
  if (v.steps) kids.push(el("ol", {}, ...v.steps.map((s) => el("li", {}, s.matched ? "✓ " : "… ", el("code", {}, s.condition), s.first_at ? ` (first at ${when(s.first_at)})` : ""))), el("div", {}, `within ${v.within}` + (v.deadline ? `, by ${when(v.deadline)}` : "")));
  if (v.after) kids.push(el("div", {}, "after ", el("code", {}, v.after), ...(v.unless ? [" unless ", el("code", {}, v.unless)] : []), ` within ${v.within}`));
  if (v.quiet) kids.push(el("div", {}, `inactive for ${v.quiet}`));
  if (v.timer_due) kids.push(el("div", {}, `timer due ${when(v.timer_due)}`));
  kids.push(el("div", {}, `fired ${v.fired}×` + (v.last_fired ? `, last ${when(v.last_fired)}` : "") + (v.cooldown ? `; cooldown ${v.cooldown}` + (v.cooldown_until ? ` (until ${when(v.cooldown_until)})` : " (not running)") : "")));
  for (const a of v.actions) {
    const parts = [`action ${a.name} → ${a.sink}`];
    if (a.guard) parts.push(`; guard ${a.guard} = ${a.guard_holds}` + (a.guard_values || []).map((g) => ` (${g.name} = ${show(g.value)})`).join(""));
    if (a.cap_max) parts.push(`; cap ${a.cap_used || 0}/${a.cap_max} per ${a.cap_per}` + (a.cap_free_at ? ` until ${when(a.cap_free_at)}` : ""));
    kids.push(el("div", {}, parts.join("")));
  }
  w.replaceChildren(...kids);
  w.dataset.trigger = v.trigger;
}

// --- live feed --------------------------------------------------------------
// The feed is read with fetch (not EventSource) so that the token travels
// in the Authorization header, never in a URL. Actions are queued as they
// arrive and rendered in batches in an animation frame, at most 4 times a
// second and at most FEED_MAX items, so that 1,000 actions/s cost a few DOM
// updates a second, while a lone action shows at the next frame.
const buffer = [];   // the last FEED_BUFFER actions, for re-filtering
let pending = [];    // arrived, not yet rendered
let scheduled = false;
let lastRender = -1e9;
const RENDER_EVERY = 250; // ms
let rateCount = 0, rate = 0;
function passes(a) {
  const t = $("f-trigger").value, s = $("f-sink").value;
  return (!t || a.trigger === t) && (!s || a.sink === s);
}
function onAction(a) {
  lp.received++;
  rateCount++;
  if (!(a.contact in lp.arrivals)) lp.arrivals[a.contact] = Date.now();
  buffer.push(a);
  if (buffer.length > FEED_BUFFER) buffer.splice(0, buffer.length - FEED_BUFFER);
  pending.push(a);
  if (!scheduled) {
    // At most 4 renders a second: each costs a layout and a paint of the
    // list whatever its size, so under a flood fewer, larger batches keep
    // the tab responsive; a lone action still shows at the next frame.
    scheduled = true;
    const wait = Math.max(0, RENDER_EVERY - (performance.now() - lastRender));
    if (wait === 0) requestAnimationFrame(renderFeed);
    else setTimeout(() => requestAnimationFrame(renderFeed), wait);
  }
}
// feedHTML renders actions (newest first) as list items. One HTML string
// per batch, parsed once, costs far less than building each node by hand.
const esc = (v) => String(v == null ? "" : v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
function feedHTML(actions) {
  let h = "";
  for (let i = actions.length - 1; i >= 0; i--) {
    const a = actions[i];
    h += `<li data-contact="${esc(a.contact)}" data-trigger="${esc(a.trigger)}"><a href="#contact=${esc(encodeURIComponent(a.contact))}">${esc(a.contact)}</a> ` +
      `<b>${esc(a.trigger)}</b> → ${esc(a.action)}${a.sink ? " @" + esc(a.sink) : ""}` +
      `<span class="meta"> score ${esc(fmt(a.score))} · ${esc(clockFmt.format(new Date(a.at)))}</span>` +
      (a.message ? `<span class="msg">${esc(a.message)}</span>` : "") + "</li>";
  }
  return h;
}
// A click on a contact in the feed opens it, even when it is the one shown
// (no hashchange then).
$("feed-list").addEventListener("click", (ev) => {
  const a = ev.target.closest("a");
  if (!a) return;
  const id = a.parentElement.dataset.contact;
  if (location.hash === "#contact=" + encodeURIComponent(id)) { ev.preventDefault(); loadContact(id); }
});
function renderFeed() {
  const t0 = performance.now();
  scheduled = false;
  lastRender = t0;
  const list = $("feed-list");
  const t = $("f-trigger").value, sk = $("f-sink").value;
  const show = pending.filter((a) => (!t || a.trigger === t) && (!sk || a.sink === sk)).slice(-FEED_MAX);
  pending = [];
  if (show.length) {
    list.insertAdjacentHTML("afterbegin", feedHTML(show));
    trim(list);
    const now = Date.now();
    for (const a of show) if (!(a.contact in lp.shown)) lp.shown[a.contact] = now;
    lp.rendered += show.length;
    showStats();
  }
  lp.feedMs += performance.now() - t0;
}
// trim removes the items past FEED_MAX in one operation.
function trim(list) {
  if (list.childElementCount <= FEED_MAX) return;
  const r = document.createRange();
  r.setStartBefore(list.children[FEED_MAX]);
  r.setEndAfter(list.lastElementChild);
  r.deleteContents();
}
function refilter() {
  $("feed-list").innerHTML = feedHTML(buffer.filter(passes).slice(-FEED_MAX));
}
$("f-trigger").onchange = refilter;
$("f-sink").onchange = refilter;

async function connectFeed() {
  for (;;) {
    try {
      const r = await fetch("/feed", { headers: { ...headers(), Accept: "text/event-stream" } });
      if (r.status === 401) { sessionStorage.removeItem("leadpulse-token"); await askToken(); continue; }
      if (!r.ok || !r.body) throw new Error("feed: " + r.status);
      lp.connected = true;
      showStats();
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        // One split per chunk: a chunk may hold hundreds of events, and
        // slicing the rest off after each would copy it each time.
        const t0 = performance.now();
        const blocks = (buf + value).split("\n\n");
        buf = blocks.pop();
        for (const block of blocks) {
          let type = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) type = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (type === "action" && data) onAction(JSON.parse(data));
          else if (type === "dropped") lp.dropped = Number(data);
        }
        lp.feedMs += performance.now() - t0;
      }
    } catch (e) {
      console.warn(e);
    }
    lp.connected = false;
    await new Promise((r) => setTimeout(r, 2000));
  }
}
function showStats() {
  $("feed-stats").textContent = `${lp.connected ? "live" : "reconnecting…"} · ${rate}/s · ${lp.received} received · ${$("feed-list").childElementCount} shown` + (lp.dropped ? ` · ${lp.dropped} dropped by the server (tab too slow)` : "");
}
setInterval(() => { rate = rateCount; rateCount = 0; showStats(); }, 1000);

// Responsiveness figures: frames drawn, and the event loop's lag (how late
// a 50 ms timer runs).
(function frames() { lp.frames++; requestAnimationFrame(frames); })();
let expected = performance.now() + 50;
setInterval(() => {
  const now = performance.now(), lag = Math.max(0, now - expected);
  lp.maxLagMs = Math.max(lp.maxLagMs, lag);
  lp.lagSamples.push(lag);
  if (lp.lagSamples.length > 2000) lp.lagSamples.shift();
  expected = now + 50;
}, 50);

loadRules().then(route);
connectFeed();
setInterval(loadRules, 15000);
