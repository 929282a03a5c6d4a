// The hub's pages: fetch /api/..., fill the tables, draw the plots as SVG. No library.
"use strict";
(function () {
  const root = document.documentElement;
  function noteError(text) {
    const errors = root.dataset.errors ? JSON.parse(root.dataset.errors) : [];
    errors.push(String(text));
    root.dataset.errors = JSON.stringify(errors);
  }
  window.addEventListener("error", (e) => noteError(e.message || "error"));
  window.addEventListener("unhandledrejection", (e) => noteError(e.reason || "unhandled rejection"));
  const consoleError = console.error.bind(console);
  console.error = (...args) => { noteError(args.join(" ")); consoleError(...args); };

  const main = document.getElementById("main");
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return node;
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text != null) node.textContent = text;
    return node;
  }
  async function api(path) {
    const r = await fetch(path);
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  }
  function ago(iso) {
    if (!iso) return "never";
    const s = (Date.now() - Date.parse(iso)) / 1000;
    if (s < 90) return Math.max(0, Math.round(s)) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 129600) return Math.round(s / 3600) + " h ago";
    return iso.slice(0, 16).replace("T", " ");
  }
  function fmt(v) { return v == null ? "" : (Math.abs(v) >= 1e6 || Number.isInteger(v) ? String(v) : String(+v.toPrecision(7))); }
  function table(id, headers, rows) {
    const t = el("table", { id: id });
    t.append(el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))));
    const body = el("tbody");
    for (const row of rows) body.append(el("tr", {}, ...row.map((c) => c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))));
    t.append(body);
    return t;
  }

  async function metersPage() {
    const meters = await api("/api/meters");
    const rows = meters.map((m) => {
      const reading = (m.last_reading || []).slice(0, 3).map((r) => r.quantity.replace(/_/g, " ") + " " + fmt(r.value) + " " + r.unit).join(", ");
      const rx = el("td");
      m.receivers.forEach((r, i) => rx.append(el("span", { class: "rx" + (i === 0 ? " best" : "") }, r.id + " " + (r.rssi == null ? "?" : r.rssi.toFixed(1)) + " dBFS")));
      const alarm = el("td", {}, m.alarm ? el("span", { class: "alarm" }, "silent") : el("span", { class: "ok" }, "ok"));
      return [el("td", {}, el("a", { href: "/meter/" + m.id }, m.id)), m.manufacturer, m.device_type, reading || el("span", { class: "muted" }, m.decryption),
              el("td", { title: m.last_seen || "" }, ago(m.last_seen)), rx, alarm];
    });
    main.append(table("meters", ["Meter", "Manufacturer", "Type", "Last reading", "Last seen", "Receivers (RSSI)", "Alarm"], rows));
    main.append(el("p", { class: "muted" }, meters.length + " meters, " + meters.filter((m) => m.alarm).length + " silent"));
  }

  function plot(title, unit, points) {
    const W = 680, H = 200, L = 70, R = 12, T = 12, B = 28;
    const box = svg("svg", { class: "plot", width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-series": title });
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 === y0) { y0 -= Math.abs(y0) * 0.01 || 1; y1 += Math.abs(y1) * 0.01 || 1; }
    const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R), Y = (y) => H - B - (y - y0) / (y1 - y0) * (H - T - B);
    box.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    box.append(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
    box.append(svg("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, fmt(y1)));
    box.append(svg("text", { x: L - 4, y: H - B, "text-anchor": "end" }, fmt(y0)));
    box.append(svg("text", { x: L, y: H - 8 }, new Date(x0).toISOString().slice(0, 19).replace("T", " ")));
    box.append(svg("text", { x: W - R, y: H - 8, "text-anchor": "end" }, new Date(x1).toISOString().slice(0, 19).replace("T", " ")));
    box.append(svg("text", { x: L + 6, y: T + 8 }, title + (unit ? " [" + unit + "]" : "")));
    box.append(svg("polyline", { class: "line", points: points.map((p) => X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1)).join(" ") }));
    if (points.length <= 300) for (const p of points) box.append(svg("circle", { class: "pt", cx: X(p[0]).toFixed(1), cy: Y(p[1]).toFixed(1), r: 3 }));
    return box;
  }

  async function meterPage() {
    const id = document.body.dataset.meter;
    const [meters, readings] = await Promise.all([api("/api/meters"), api("/api/meters/" + id + "/readings")]);
    const m = meters.find((x) => x.id === id);
    if (m) {
      main.append(el("p", {}, `${m.manufacturer} ${m.device_type}, last seen ${ago(m.last_seen)}, interval ${m.interval_s == null ? "learning" : m.interval_s.toFixed(1) + " s"}, `,
        m.alarm ? el("span", { class: "alarm" }, "silent") : el("span", { class: "ok" }, "no alarm")));
      main.append(table("meter-receivers", ["Receiver", "RSSI (dBFS)", "Last seen"], m.receivers.map((r) => [r.id, r.rssi == null ? "" : r.rssi.toFixed(1), ago(r.last_seen)])));
    }
    const series = new Map();
    for (const r of readings) {
      if (r.storage || r.tariff || r.subunit) continue;
      const key = r.idx + ":" + r.quantity;
      if (!series.has(key)) series.set(key, { name: r.quantity.replace(/_/g, " "), unit: r.unit, points: [] });
      series.get(key).points.push([Date.parse(r.time), r.value]);
    }
    const plots = el("div", { id: "plots" });
    for (const s of series.values()) plots.append(plot(s.name, s.unit, s.points));
    main.append(el("h2", {}, "Readings over time"), plots);
    const last = readings.slice(-60).reverse();
    main.append(el("h2", {}, "Latest readings"),
      table("readings", ["Time (UTC)", "Quantity", "Value", "Unit", "Storage"], last.map((r) => [r.time.slice(0, 23).replace("T", " "), r.quantity, el("td", { class: "num" }, fmt(r.value)), r.unit, r.storage])));
  }

  async function receiversPage() {
    const receivers = await api("/api/receivers");
    main.append(table("receivers", ["Receiver", "Status", "Last seen", "Frames", "Frames/min", "ppm", "Dropped samples", "Input"],
      receivers.map((r) => [r.id, el("td", {}, r.status == null ? "" : el("span", { class: r.status === "online" ? "ok" : "alarm" }, r.status)),
                            el("td", { title: r.last_seen || "" }, ago(r.last_seen)), el("td", { class: "num" }, r.frames),
                            el("td", { class: "num" }, fmt(r.frames_per_min)), el("td", { class: "num" }, r.ppm == null ? "" : r.ppm.toFixed(2)),
                            el("td", { class: "num" }, r.dropped_samples == null ? "" : r.dropped_samples), r.source])));
  }

  async function status() {
    const s = await api("/api/status");
    const rejected = Object.values(s.rejects).reduce((a, b) => a + b, 0);
    document.getElementById("status").textContent = `${s.hub}: ${s.stats.frames_in || 0} frames in, ${s.stats.stored || 0} stored, ${rejected} rejected`;
  }

  const pages = { meters: metersPage, meter: meterPage, receivers: receiversPage };
  Promise.all([pages[document.body.dataset.page](), status()])
    .catch((e) => noteError(e && e.message ? e.message : e))
    .finally(() => { document.body.dataset.ready = "1"; });
})();
