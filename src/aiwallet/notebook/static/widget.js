// aiwallet's budget widget (an anywidget front-end module). It only draws: every figure
// arrives from the kernel as exact text; the numbers here are chart geometry.

const TRAITS = [
  "state", "app", "message", "models", "spent", "budget", "left", "resets", "burn",
  "runout", "used_fraction", "curve", "now_fraction", "runout_fraction", "window_label",
  "updated",
];
const SVG = "http://www.w3.org/2000/svg";
const W = 360;
const H = 64;
const BANNERS = {
  paused: ["warn", "Paused"],
  app_paused: ["warn", "Paused"],
  revoked: ["error", "Access revoked"],
  exhausted: ["error", "Budget used up"],
  no_wallet: ["muted", "No wallet"],
  connecting: ["muted", "Connecting"],
};

function node(tag, cls, text) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined && text !== null) n.textContent = text;
  return n;
}

function svg(tag, attrs) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  return n;
}

function chart(m) {
  const curve = m.curve || [];
  const box = svg("svg", {
    viewBox: `0 0 ${W} ${H}`, class: "aiw-chart", role: "img",
    "aria-label": `spend over the window: ${m.spent} of ${m.budget || "no budget"}`,
  });
  const top = 6;
  const bottom = H - 2;
  const y = (f) => bottom - Math.max(0, Math.min(1.15, f)) * (bottom - top) / 1.15;
  const nowX = Math.max(0, Math.min(1, m.now_fraction)) * W;
  box.appendChild(svg("rect", { x: 0, y: 0, width: W, height: H, class: "aiw-chart-bg" }));
  if (m.budget) {
    box.appendChild(svg("line", { x1: 0, x2: W, y1: y(1), y2: y(1), class: "aiw-limit" }));
  }
  if (curve.length > 1) {
    const pts = curve.map(([fx, fy]) => [Math.max(0, Math.min(1, fx)) * W, y(fy)]);
    const line = pts.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`).join("");
    const area = `${line}L${pts[pts.length - 1][0].toFixed(1)},${bottom}L0,${bottom}Z`;
    box.appendChild(svg("path", { d: area, class: "aiw-area" }));
    box.appendChild(svg("path", { d: line, class: "aiw-line" }));
    const last = pts[pts.length - 1];
    if (m.runout_fraction !== null && m.runout_fraction !== undefined) {
      const rx = Math.max(0, Math.min(1, m.runout_fraction)) * W;
      box.appendChild(svg("path", {
        d: `M${last[0].toFixed(1)},${last[1].toFixed(1)}L${rx.toFixed(1)},${y(1).toFixed(1)}`,
        class: "aiw-projection",
      }));
    }
    box.appendChild(svg("circle", { cx: last[0], cy: last[1], r: 2.5, class: "aiw-dot" }));
  }
  box.appendChild(svg("line", { x1: nowX, x2: nowX, y1: top - 4, y2: bottom, class: "aiw-now" }));
  return box;
}

function draw(root, m) {
  root.replaceChildren();
  root.dataset.state = m.state;
  const head = node("div", "aiw-head");
  head.appendChild(node("span", "aiw-title", "aiwallet"));
  if (m.app) head.appendChild(node("span", "aiw-app", m.app));
  const live = node("span", "aiw-live", m.updated ? `updated ${m.updated}` : "");
  head.appendChild(live);
  root.appendChild(head);

  const banner = BANNERS[m.state];
  if (banner) {
    const b = node("div", `aiw-banner aiw-${banner[0]}`);
    b.appendChild(node("strong", null, banner[1]));
    if (m.message) b.appendChild(node("span", null, ` · ${m.message}`));
    root.appendChild(b);
  }
  if (m.state === "revoked" || m.state === "no_wallet" || m.state === "connecting") return;

  const figs = node("div", "aiw-figures");
  const fig = (value, label, cls) => {
    const f = node("div", `aiw-fig ${cls}`);
    f.appendChild(node("div", "aiw-value", value));
    f.appendChild(node("div", "aiw-label", label));
    return f;
  };
  figs.appendChild(fig(m.spent || "$0.00", "spent", "aiw-spent"));
  figs.appendChild(fig(m.budget || "none", m.budget ? "budget" : "no budget", "aiw-budget"));
  if (m.budget) figs.appendChild(fig(m.left, "left", "aiw-left"));
  root.appendChild(figs);

  if (m.budget) {
    const bar = node("div", "aiw-bar");
    const fill = node("div", "aiw-fill");
    const pct = Math.round(Math.max(0, Math.min(1, m.used_fraction)) * 100);
    fill.style.width = `${pct}%`;
    if (pct >= 80) fill.classList.add("aiw-hot");
    bar.appendChild(fill);
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuenow", String(pct));
    root.appendChild(bar);
  }
  root.appendChild(chart(m));
  const axis = node("div", "aiw-axis");
  const labels = m.window_label || ["", ""];
  axis.appendChild(node("span", null, labels[0]));
  axis.appendChild(node("span", null, labels[1]));
  root.appendChild(axis);

  const foot = node("div", "aiw-foot");
  for (const part of [m.resets && `resets ${m.resets}`, m.burn, m.runout]) {
    if (part) foot.appendChild(node("span", "aiw-part", part));
  }
  root.appendChild(foot);
  if (m.models) root.appendChild(node("div", "aiw-models", `models: ${m.models}`));
}

function render({ model, el }) {
  const root = node("div", "aiw");
  el.appendChild(root);
  let scheduled = false;
  const redraw = () => {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(() => {
      scheduled = false;
      const m = {};
      for (const name of TRAITS) m[name] = model.get(name);
      draw(root, m);
    });
  };
  for (const name of TRAITS) model.on(`change:${name}`, redraw);
  redraw();
  return () => {
    for (const name of TRAITS) model.off(`change:${name}`, redraw);
  };
}

export default { render };
