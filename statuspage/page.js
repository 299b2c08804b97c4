"use strict";
// Every value goes in as text (textContent): names and metadata are
// whatever a client registered.
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}
function fill(id, rows, cols, none) {
  const body = document.getElementById(id);
  body.replaceChildren();
  if (!rows.length) {
    const td = el("td", none, "empty");
    td.colSpan = cols;
    body.appendChild(row([td]));
    return;
  }
  for (const r of rows) body.appendChild(row(r));
}
function num(v) { return el("td", v, "n"); }
function render(s) {
  document.getElementById("server").textContent = s.server || "";
  document.getElementById("about").textContent =
    [s.version && "version " + s.version, s.endpoint, s.security, "up " + Math.round(s.uptime || 0) + " s", "index " + s.index]
      .filter(Boolean).join(" · ");
  document.getElementById("error").textContent = s.error || "";
  const cs = document.getElementById("counters");
  cs.replaceChildren();
  for (const c of s.counters || []) {
    const d = el("div", c.name);
    d.appendChild(el("b", c.value));
    cs.appendChild(d);
  }
  const svc = [];
  for (const sv of s.services || []) {
    for (const i of sv.instances || []) {
      const meta = Object.keys(i.meta || {}).sort().map(k => k + "=" + i.meta[k]).join(" ");
      svc.push([el("td", sv.name, "mono"), el("td", i.instance, "mono"), el("td", i.address, "mono"),
        i.kind, el("td", i.origin, "mono"), el("td", meta, "mono meta")]);
    }
  }
  fill("services", svc, 6, "no services");
  fill("joined", (s.joined || []).map(j => [el("td", j.peer, "mono"), el("td", j.addr, "mono"), j.dir,
    el("td", j.state, j.up ? "ok" : "bad"), num(j.lag.toFixed(1)), el("td", j.error, "bad")]), 6, "no joined servers");
  fill("tunnels", (s.tunnels || []).map(t => [el("td", t.name, "mono"), el("td", t.server, "mono"),
    el("td", t.state, t.state === "up" ? "ok" : "bad"), num(t.proxies), num(t.streams), num(t.bytes_in), num(t.bytes_out),
    el("td", t.error, "bad")]), 8, "no tunnels");
}
function live(ok, text) {
  const l = document.getElementById("live");
  l.textContent = text;
  l.className = ok ? "ok" : "bad";
}
// Server-sent events; where they do not get through (a proxy that buffers),
// polling the JSON every few seconds.
let polling = null;
function poll() {
  fetch("/v1/hydra/status", {cache: "no-store"}).then(r => r.json()).then(s => { render(s); live(true, "live (polling)"); })
    .catch(e => live(false, "server unreachable"));
}
if (window.EventSource) {
  const es = new EventSource("/v1/hydra/events");
  es.onmessage = ev => { render(JSON.parse(ev.data)); live(true, "live"); if (polling) { clearInterval(polling); polling = null; } };
  es.onerror = () => { live(false, "reconnecting…"); if (!polling) polling = setInterval(poll, 3000); };
} else {
  poll();
  polling = setInterval(poll, 3000);
}
