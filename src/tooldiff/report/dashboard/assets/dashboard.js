/* tooldiff dashboard: renders the page's embedded data (index or latent page). No dependencies,
   no network: every page carries its data in <script id="data" type="application/json">. */
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("data").textContent);
  const app = document.getElementById("app");
  const SVGNS = "http://www.w3.org/2000/svg";
  const ROLE_COLORS = {
    effect: "#c62828", control_random: "#7d8590", control_unrelated: "#7b3fb5", baseline: "#2e7d32",
    "rival (difference of means)": "#2e7d32", "effect it controls for": "#c62828", reference: "#000",
  };
  const KIND_COLORS = { call: "#c62828", not_offered: "#ef8f00", chitchat: "#2e7d32", generic: "#1565c0" };

  // --- small DOM helpers ----------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return node;
  }
  function s(tag, attrs, ...children) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, v);
    for (const c of children.flat()) if (c) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    return node;
  }
  function fmt(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    if (typeof x !== "number") return String(x);
    if (Number.isInteger(x) && Math.abs(x) < 1e6) return String(x);
    const d = digits === undefined ? 3 : digits;
    return Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(2) : x.toFixed(d);
  }
  const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1) + " %");
  const pp = (x) => (x === null || x === undefined ? "–" : (x >= 0 ? "+" : "") + (100 * x).toFixed(1) + " pp");
  const ci = (lo, hi) => "[" + pp(lo) + ", " + pp(hi) + "]";
  const pctRange = (r) => "[" + (100 * r[0]).toFixed(1) + ", " + (100 * r[1]).toFixed(1) + "] %";
  function table(headers, rows, opts) {
    const o = opts || {};
    return el("table", { class: o.class },
      el("thead", {}, el("tr", {}, headers.map((h, i) => el("th", { class: (o.text || []).includes(i) ? "text" : null }, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c, i) =>
        el("td", { class: (o.text || []).includes(i) ? "text" : null }, c instanceof Node ? c : fmt(c)))))));
  }
  const yesNo = (v) => el("span", { class: v ? "yes" : "no" }, v ? "yes" : "no");

  // --- plots (inline SVG) ---------------------------------------------------------------------
  function scale(d0, d1, r0, r1) {
    const span = d1 - d0 || 1;
    return (v) => r0 + ((v - d0) / span) * (r1 - r0);
  }
  function axes(svg, x, y, w, h, m, xlab, ylab, xticks, yticks) {
    svg.appendChild(s("line", { class: "axis", x1: m.l, y1: h - m.b, x2: w - m.r, y2: h - m.b }));
    svg.appendChild(s("line", { class: "axis", x1: m.l, y1: m.t, x2: m.l, y2: h - m.b }));
    for (const t of xticks) svg.appendChild(s("text", { x: x(t), y: h - m.b + 13, "text-anchor": "middle" }, fmt(t, 2)));
    for (const t of yticks) svg.appendChild(s("text", { x: m.l - 4, y: y(t) + 4, "text-anchor": "end" }, fmt(t, 2)));
    if (xlab) svg.appendChild(s("text", { x: (m.l + w - m.r) / 2, y: h - 2, "text-anchor": "middle" }, xlab));
    if (ylab) svg.appendChild(s("text", { x: 10, y: m.t - 4 }, ylab));
  }
  const ticks = (lo, hi, n) => Array.from({ length: n + 1 }, (_, i) => lo + ((hi - lo) * i) / n);

  /* series: [{name, color, counts}] over shared edges: step lines, so that overlaps stay readable */
  function histogram(edges, series, opts) {
    const o = Object.assign({ w: 460, h: 200, xlab: "", ylab: "count", log: false }, opts || {});
    const m = { l: 44, r: 10, t: 16, b: 30 };
    const svg = s("svg", { width: o.w, height: o.h, class: "plot hist" });
    const top = Math.max(1, ...series.flatMap((ser) => ser.counts));
    const tr = o.log ? (v) => Math.log10(1 + v) : (v) => v;
    const x = scale(edges[0], edges[edges.length - 1], m.l, o.w - m.r);
    const y = scale(0, tr(top), o.h - m.b, m.t);
    axes(svg, x, (v) => y(tr(v)), o.w, o.h, m, o.xlab, o.ylab + (o.log ? " (log)" : ""),
      ticks(edges[0], edges[edges.length - 1], 4), [0, top]);
    for (const ser of series) {
      let d = "M" + x(edges[0]) + "," + y(0);
      ser.counts.forEach((c, i) => { d += " L" + x(edges[i]) + "," + y(tr(c)) + " L" + x(edges[i + 1]) + "," + y(tr(c)); });
      d += " L" + x(edges[edges.length - 1]) + "," + y(0);
      svg.appendChild(s("path", { d: d, fill: series.length === 1 ? ser.color : "none", "fill-opacity": 0.35,
        stroke: ser.color, "stroke-width": 1.5 }));
    }
    return svg;
  }

  function lineChart(points, opts) {
    const o = Object.assign({ w: 460, h: 180, xlab: "", ylab: "", log: true }, opts || {});
    const m = { l: 44, r: 10, t: 16, b: 30 };
    const svg = s("svg", { width: o.w, height: o.h, class: "plot line" });
    const good = points.filter((p) => p[1] !== null && p[1] > 0);
    if (!good.length) return svg;
    const tr = o.log ? Math.log10 : (v) => v;
    const xs = good.map((p) => p[0]), ys = good.map((p) => tr(p[1]));
    const x = scale(Math.min(...xs), Math.max(...xs), m.l, o.w - m.r);
    const y = scale(Math.min(...ys), Math.max(...ys), o.h - m.b, m.t);
    axes(svg, x, (v) => y(tr(v)), o.w, o.h, m, o.xlab, o.ylab + (o.log ? " (log)" : ""),
      ticks(Math.min(...xs), Math.max(...xs), 4), [Math.min(...good.map((p) => p[1])), Math.max(...good.map((p) => p[1]))]);
    svg.appendChild(s("path", { d: good.map((p, i) => (i ? "L" : "M") + x(p[0]) + "," + y(tr(p[1]))).join(" "),
      fill: "none", stroke: "#c62828", "stroke-width": 1.5 }));
    return svg;
  }

  /* rows: [{label, role, value: [diff, lo, hi]}]: each effect with its CI beside its panel */
  function forest(rows, title) {
    const shown = rows.filter((r) => r.value);
    const w = 560, rowH = 18, m = { l: 210, r: 20, t: 22, b: 30 };
    const h = m.t + m.b + rowH * Math.max(1, shown.length);
    const svg = s("svg", { width: w, height: h, class: "plot forest" });
    const lo = Math.min(0, ...shown.map((r) => r.value[1])), hi = Math.max(0, ...shown.map((r) => r.value[2]));
    const pad = (hi - lo) * 0.05 || 0.05;
    const x = scale(lo - pad, hi + pad, m.l, w - m.r);
    svg.appendChild(s("text", { x: m.l, y: 12 }, title));
    svg.appendChild(s("line", { class: "zero", x1: x(0), y1: m.t, x2: x(0), y2: h - m.b }));
    svg.appendChild(s("line", { class: "axis", x1: m.l, y1: h - m.b, x2: w - m.r, y2: h - m.b }));
    for (const t of ticks(lo - pad, hi + pad, 4)) {
      svg.appendChild(s("text", { x: x(t), y: h - m.b + 13, "text-anchor": "middle" }, (100 * t).toFixed(0)));
    }
    svg.appendChild(s("text", { x: (m.l + w) / 2, y: h - 3, "text-anchor": "middle" }, "change vs no intervention (pp, 95 % CI)"));
    shown.forEach((r, i) => {
      const yy = m.t + rowH * i + rowH / 2;
      const color = ROLE_COLORS[r.role] || "#333";
      svg.appendChild(s("text", { x: m.l - 6, y: yy + 4, "text-anchor": "end" }, r.label));
      svg.appendChild(s("line", { x1: x(r.value[1]), x2: x(r.value[2]), y1: yy, y2: yy, stroke: color, "stroke-width": 2 }));
      svg.appendChild(s("circle", { cx: x(r.value[0]), cy: yy, r: 3.5, fill: color },
        s("title", {}, r.label + ": " + pp(r.value[0]) + " " + ci(r.value[1], r.value[2]))));
    });
    return svg;
  }

  // --- token highlighting ---------------------------------------------------------------------
  function showToken(t) {
    return t.replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5");
  }
  /* tokens with their activations; alpha = value / top (top shared across a page, so rows compare) */
  function tokenRow(tokens, values, top, rgb, side) {
    const line = el("div", { class: "toks" }, side ? el("span", { class: "side" }, side) : null);
    tokens.forEach((t, i) => {
      const v = values[i] || 0;
      const a = top > 0 ? Math.min(1, v / top) : 0;
      line.appendChild(el("span", {
        class: "tok" + (v > 0 ? " on" : ""), title: fmt(v, 3), "data-act": v,
        style: v > 0 ? "background: rgba(" + rgb + "," + (0.15 + 0.85 * a).toFixed(3) + ")" : null,
      }, showToken(t)));
    });
    return line;
  }
  const RGB = { rl: getComputedStyle(document.documentElement).getPropertyValue("--rl").trim() || "230,97,0",
    base: getComputedStyle(document.documentElement).getPropertyValue("--base").trim() || "38,110,200" };

  // --- the index ------------------------------------------------------------------------------
  function renderIndex(d) {
    app.append(el("h1", {}, "tooldiff dashboard"),
      el("div", { class: "muted" }, "experiment " + d.experiment + " · layer " + d.layer + " · n = " + d.n_test +
        " test prompts per condition · seed " + d.seed),
      el("div", { class: "muted small" }, "RL model " + d.models.rl + " · base " + d.models.base),
      el("div", { class: "small" }, el("a", { href: "live.html" }, "live panel"), " (needs `tooldiff serve --dashboard`)"));
    for (const n of d.notes) app.append(el("div", { class: "note" }, n));
    app.append(el("h2", {}, "Models without intervention"), table(
      ["model", "n", "strict", "95 % CI", "lenient", "precision", "recall", "F1", "FPR", "calls/prompt"],
      d.baselines.map((b) => [b.model, b.n, pct(b.strict.mean), pctRange(b.strict.ci95),
        pct(b.lenient.mean), b.trigger.precision, b.trigger.recall, b.trigger.f1, b.trigger.fpr, b.calls_per_prompt]),
      { text: [0], class: "baselines" }));
    app.append(el("h2", {}, "Crosscoders"));
    for (const [study, ccs] of Object.entries(d.crosscoders)) {
      if (study !== "main") app.append(el("h3", {}, "positive control (rank1 organism)"));
      app.append(el("div", { class: "cards" }, ccs.map(crosscoderCard)));
    }
    renderLatentTable(d);
    renderFindings(d.findings);
    renderPositive(d);
  }

  function renderFindings(f) {
    app.append(el("h2", {}, "Findings"));
    const claim = (c) => c.intervention + " of latent " + c.features.join(",") + " (" + c.crosscoder +
      (c.alpha !== null && c.alpha !== undefined ? ", α=" + c.alpha : "") + "): " + pp(c.diff) + " " + ci(c.lo, c.hi);
    const box = el("div", { class: "findings" });
    box.append(el("p", {}, "Single latent, strict correctness beyond its control panel: ", yesNo(f.single_latent_holds),
      " (" + f.winners.length + " of " + f.single_latent_tried + " steer/ablate conditions held)"));
    if (f.winners.length) box.append(el("ul", {}, f.winners.map((w) => el("li", {}, "held: " + claim(w)))));
    else if (f.largest) box.append(el("p", {}, "largest: " + claim(f.largest)));
    if (f.transfer.length) {
      box.append(el("h3", {}, "Transfer into the base: the RL latent's direction vs the difference-of-means rivals"),
        table(["crosscoder", "dose", "latent", "strict", "Δ call rate", "rival", "strict", "Δ call rate"],
          f.transfer.map((r) => [r.crosscoder, r.dose, r.latent, pct(r.latent_strict), pp(r.latent_call_rate_diff),
            r.rival, pct(r.rival_strict), pp(r.rival_call_rate_diff)]), { text: [0, 5] }));
    }
    if (f.recon.length) {
      box.append(el("h3", {}, "Reconstruction splice, matched vs mismatched normalization"),
        table(["crosscoder", "model", "normalization", "strict", "Δ vs none", "95 % CI"],
          f.recon.map((r) => [r.crosscoder, r.model, r.normalization, pct(r.strict.mean), pp(r.diff), ci(r.ci95[0], r.ci95[1])]),
          { text: [0, 1, 2] }));
    }
    box.append(el("div", { class: "muted small" }, "source: " + f.source));
    app.append(box);
  }

  function renderPositive(d) {
    app.append(el("h2", {}, "Positive control"));
    const pc = d.findings.positive;
    if (!pc) app.append(el("p", { class: "muted" }, "No positive-control verdict in this run's results."));
    else {
      app.append(el("p", {}, "Verdict: ", yesNo(pc.passed), " passed · criterion: " + (pc.criterion || "") +
        " · validated kinds: " + ((pc.validated_kinds || []).join(", ") || "none")),
      table(["crosscoder", "recovered (|cos| > 0.9)", "latent ablation passes", "direction ablation passes"],
        Object.entries(pc.verdicts || {}).map(([n, v]) => [n, yesNo(v.recovered), yesNo(v.passed_by_latent_ablation),
          yesNo(v.passed_by_direction_ablation)]), { text: [0] }),
      el("ul", {}, (pc.ablation || []).map((line) => el("li", { class: "small" }, line))));
    }
    const planted = [];
    for (const [study, ccs] of Object.entries(d.crosscoders)) {
      for (const cc of ccs) if (cc.planted) planted.push([study, cc]);
    }
    if (planted.length) {
      app.append(el("h3", {}, "The planted direction, per crosscoder"), table(
        ["study", "crosscoder", "closest latent", "|cos|", "group", "top-ranked latent", "|cos|", "share of the shift"],
        planted.map(([study, cc]) => [study, cc.name, latentLink(d, study, cc.name, cc.planted.best_latent),
          cc.planted.best_abs_cosine, cc.planted.best_group,
          cc.planted.top_ranked_latent === null ? "–" : latentLink(d, study, cc.name, cc.planted.top_ranked_latent),
          cc.planted.top_ranked_abs_cosine, cc.planted.captured_share]), { text: [0, 1, 4] }));
    }
  }

  function latentLink(d, study, cc, latent) {
    const cols = d.columns;
    const row = d.rows.find((r) => r[cols.indexOf("study")] === study && r[cols.indexOf("crosscoder")] === cc &&
      r[cols.indexOf("latent")] === latent);
    const href = row && row[cols.indexOf("page")];
    return href ? el("a", { href: href }, String(latent)) : el("span", {}, String(latent));
  }

  function crosscoderCard(cc) {
    const fve = Object.entries(cc.fve || {}).map(([k, v]) => "FVE " + (k === "a" ? "RL" : k === "b" ? "base" : k) + " " + fmt(v));
    const part = Object.entries(cc.partition || {}).map(([k, v]) => k + " " + v).join(" · ");
    const card = el("div", { class: "card crosscoder", "data-name": cc.name },
      el("h3", {}, cc.name),
      el("div", { class: "small" }, fve.join(" · ") + " · L0 " + fmt(cc.l0, 1) + " · dead " + pct(cc.dead_frac) +
        (cc.step !== null ? " · step " + cc.step : "")),
      el("div", { class: "small muted" }, part));
    if (cc.delta_hist) {
      card.append(histogram(cc.delta_hist.edges, [{ name: "Δ", color: "#c62828", counts: cc.delta_hist.counts }],
        { w: 290, h: 140, xlab: "Δ (0 = RL only, 1 = base only)", ylab: "latents", log: true }));
    }
    if (cc.history.length) {
      card.append(lineChart(cc.history.map((p) => [p[0], p[1]]), { w: 290, h: 140, xlab: "training step", ylab: "loss" }));
    }
    return card;
  }

  function renderLatentTable(d) {
    const cols = d.columns;
    const numeric = cols.map((c, i) => d.rows.some((r) => typeof r[i] === "number"));
    const state = { sort: cols.indexOf("rank"), dir: 1, text: "" };
    const studySel = el("select", { id: "f-study" }, el("option", { value: "" }, "every study"),
      [...new Set(d.rows.map((r) => r[0]))].map((v) => el("option", { value: v }, v)));
    const ccSel = el("select", { id: "f-crosscoder" }, el("option", { value: "" }, "every crosscoder"),
      [...new Set(d.rows.map((r) => r[1]))].map((v) => el("option", { value: v }, v)));
    const groupSel = el("select", { id: "f-group" }, el("option", { value: "" }, "every group"),
      [...new Set(d.rows.map((r) => r[4]))].sort().map((v) => el("option", { value: v }, v)));
    const pageOnly = el("input", { type: "checkbox", id: "f-page" });
    const query = el("input", { type: "text", id: "f-query", placeholder: "filter: strict_auroc>0.7 fire_call>=0.1 a_excl" });
    const count = el("span", { class: "muted", id: "latent-count" });
    const head = el("tr", {}, cols.map((c, i) => el("th", {
      class: "sortable" + (numeric[i] ? "" : " text"), "data-col": c, onclick: () => {
        state.dir = state.sort === i ? -state.dir : (numeric[i] ? -1 : 1);
        state.sort = i;
        draw();
      },
    }, c)));
    const body = el("tbody", {});
    app.append(el("h2", {}, "Latents"),
      el("div", { class: "muted small" }, "Every latent of every crosscoder, as ranked on the calibration split " +
        "(strict: should-call vs no-call tool prompts; paper: tool prompts vs generic text). Click a header to sort; " +
        "a filter term is a word (matched in the text columns) or column>value, <, >=, <=, =, !=."),
      el("div", { class: "controls" }, studySel, ccSel, groupSel, el("label", {}, pageOnly, " with a page"), query, count),
      el("div", { class: "table-wrap" }, el("table", { id: "latents" }, el("thead", {}, head), body)));
    for (const c of [studySel, ccSel, groupSel, pageOnly]) c.addEventListener("change", draw);
    query.addEventListener("input", draw);

    function predicate() {
      const terms = query.value.trim().split(/\s+/).filter(Boolean).map((t) => {
        const m = t.match(/^([a-z_]+)(>=|<=|!=|>|<|=)(.+)$/);
        if (m && cols.includes(m[1])) {
          const i = cols.indexOf(m[1]), v = Number(m[3]);
          const ops = { ">": (a) => a > v, "<": (a) => a < v, ">=": (a) => a >= v, "<=": (a) => a <= v,
            "=": (a) => (Number.isNaN(v) ? String(a) === m[3] : a === v), "!=": (a) => (Number.isNaN(v) ? String(a) !== m[3] : a !== v) };
          return (r) => r[i] !== null && ops[m[2]](r[i]);
        }
        const w = t.toLowerCase();
        return (r) => r.some((c, i) => !numeric[i] && c !== null && String(c).toLowerCase().includes(w)) || String(r[2]) === t;
      });
      return (r) => (!studySel.value || r[0] === studySel.value) && (!ccSel.value || r[1] === ccSel.value) &&
        (!groupSel.value || r[4] === groupSel.value) && (!pageOnly.checked || r[cols.length - 1]) && terms.every((f) => f(r));
    }
    function draw() {
      const keep = predicate(), i = state.sort, dir = state.dir;
      const rows = d.rows.filter(keep).sort((a, b) => {
        const x = a[i], y = b[i];
        if (x === y) return 0;
        if (x === null) return 1;
        if (y === null) return -1;
        return (x < y ? -1 : 1) * dir;
      });
      head.querySelectorAll("th").forEach((th, j) => th.setAttribute("aria-sort", j === i ? (dir > 0 ? "ascending" : "descending") : "none"));
      body.replaceChildren(...rows.map((r) => el("tr", {}, r.map((c, j) => {
        if (cols[j] === "page") return el("td", { class: "text" }, c ? el("a", { href: c }, "page") : "");
        return el("td", { class: numeric[j] ? null : "text" }, fmt(c));
      }))));
      count.textContent = rows.length + " of " + d.rows.length + " latents";
    }
    draw();
  }

  // --- a latent's page -------------------------------------------------------------------------
  function renderLatent(d) {
    const st = d.stats;
    app.append(el("div", { class: "small" }, el("a", { href: "../index.html" }, "← index"), " · ",
      el("a", { href: "../live.html?crosscoder=" + encodeURIComponent(d.crosscoder) + "&latent=" + d.latent }, "try it live")),
      el("h1", {}, d.crosscoder + " · latent " + d.latent + (d.study !== "main" ? " (positive control)" : "")),
      el("div", {}, d.reasons.map((r) => el("span", { class: "badge" }, r))));
    const firing = Object.entries(st.firing).map(([k, v]) => el("div", {}, el("span", {}, "fires on " + k + " "), pct(v)));
    app.append(el("div", { class: "grid stats" },
      [["group", st.group + (st.rl_dominant ? " (RL-dominant)" : "")], ["rank", st.rank], ["Δ", fmt(st.delta)],
        ["RL norm share", fmt(st.rl_norm_share)], ["ν^ε", fmt(st.nu_eps)], ["ν^r", fmt(st.nu_r)],
        ["strict d", fmt(st.strict_d)], ["strict AUROC", fmt(st.strict_auroc)], ["paper d", fmt(st.paper_d)],
        ["paper AUROC", fmt(st.paper_auroc)], ["decoder cos", fmt(st.decoder_cos)]]
        .map(([k, v]) => el("div", {}, el("span", {}, k + " "), String(v))), firing));
    renderHistogram(d);
    renderExamples(d);
    renderLens(d);
    renderConditions(d);
  }

  function renderHistogram(d) {
    const h = d.histogram;
    const kinds = Object.keys(h.counts);
    app.append(el("h2", {}, "Activation at the decision position, by request kind"),
      el("div", { class: "muted small" }, "Calibration prompts (the rows the ranking used), the crosscoder reading both models. " +
        "Only rows where the latent fires are counted in the bars."),
      histogram(h.edges, kinds.map((k) => ({ name: k, color: KIND_COLORS[k] || "#333", counts: h.counts[k] })),
        { w: 560, h: 220, xlab: "activation", ylab: "prompts" }),
      el("div", { class: "legend small" }, kinds.map((k) => el("span", {},
        el("span", { class: "swatch", style: "background:" + (KIND_COLORS[k] || "#333") }),
        k + ": fires on " + h.active[k] + " of " + h.n[k]))));
  }

  function renderExamples(d) {
    app.append(el("h2", {}, "Max-activating examples"),
      el("div", { class: "muted small" }, "Calibration and test prompts, binned by the prompt's peak activation in either model; " + d.n_active_prompts + " of " + d.n_prompts + " prompts make it fire. Each token is " +
        "highlighted by the latent read from that model's activations alone (the f that steering scales there): RL on the " +
      "left, base on the right (hover for the value)."),
    ...Object.entries(d.owned).filter(([, own]) => !own).map(([m]) =>
      el("div", { class: "note small" }, m + " has no encoder for this latent (the other model's exclusive latent): its row stays blank.")));
    let top = 0;
    for (const b of d.examples) for (const ex of b.examples) top = Math.max(top, ...ex.rl, ...ex.base);
    if (!d.examples.length) app.append(el("p", { class: "muted" }, "The latent never fires on these prompts."));
    for (const b of d.examples) {
      app.append(el("h3", {}, b.label + " · peak " + fmt(b.lo) + " – " + fmt(b.hi) + " · " + b.n + " prompts"));
      for (const ex of b.examples) {
        app.append(el("div", { class: "example", "data-id": ex.id },
          el("div", { class: "meta" }, ex.id + " · " + ex.kind + " · " + ex.split + " · peak " + fmt(ex.peak)),
          el("div", { class: "split" }, tokenRow(ex.tokens, ex.rl, top, RGB.rl, "RL"),
            tokenRow(ex.tokens, ex.base, top, RGB.base, "base"))));
      }
    }
  }

  function renderLens(d) {
    app.append(el("h2", {}, "Logit lens of the decoder vector"),
      el("div", { class: "muted small" }, "The latent's decoder vector through each model's final norm and unembedding."));
    const cols = Object.entries(d.lens).map(([model, l]) => el("div", { class: "lens-" + model },
      el("h3", {}, model + " (" + l.source + ")"),
      el("div", { class: "split" },
        table(["promoted", "logit"], l.promoted.map(([t, v]) => [showToken(t), v]), { text: [0], class: "lens" }),
        table(["suppressed", "logit"], l.suppressed.map(([t, v]) => [showToken(t), v]), { text: [0], class: "lens" })),
      histogram(ticks(l.hist.lo, l.hist.hi, l.hist.counts.length), [{ name: "logits", color: "#555", counts: l.hist.counts }],
        { w: 380, h: 140, xlab: "logit over the vocabulary", ylab: "tokens", log: true })));
    app.append(el("div", { class: "split" }, cols));
  }

  function renderConditions(d) {
    app.append(el("h2", {}, "Experiment conditions that used it"));
    if (!d.conditions.length) {
      app.append(el("p", { class: "muted" }, "No experiment condition intervened on this latent."));
      return;
    }
    app.append(el("div", { class: "muted small" }, "Each condition's effect (paired difference against the same model " +
      "without intervention, on the test prompts) with its 95 % bootstrap CI, beside its control panel (random directions, " +
      "unrelated latents) and its difference-of-means rivals."), el("div", { class: "legend small" },
      [["effect", "the condition"], ["control_random", "random direction"], ["control_unrelated", "unrelated latent"],
        ["baseline", "difference-of-means rival"]].map(([role, text]) => el("span", {},
        el("span", { class: "swatch", style: "background:" + ROLE_COLORS[role] }), text))));
    for (const c of d.conditions) {
      const v = c.verdict || {};
      const verdict = (m) => v[m] ? [m + ": CI excludes 0 ", yesNo(v[m].excludes_zero), ", beyond its " + v[m].n_controls +
        " controls ", yesNo(v[m].beats_controls), " · "] : [];
      const box = el("div", { class: "condition card", "data-key": c.key },
        el("h3", {}, c.label + " · " + c.role),
        el("div", { class: "small" }, "strict " + pp(c.strict && c.strict[0]) + " " + (c.strict ? ci(c.strict[1], c.strict[2]) : "") +
          " · call rate " + pp(c.call_rate && c.call_rate[0]) + " " + (c.call_rate ? ci(c.call_rate[1], c.call_rate[2]) : "")),
        el("div", { class: "small" }, verdict("strict"), verdict("call_rate")),
        el("div", { class: "split" },
          forest(c.panel.map((r) => ({ label: r.label, role: r.role, value: r.strict })), "strict correctness"),
          forest(c.panel.map((r) => ({ label: r.label, role: r.role, value: r.call_rate })), "call rate")));
      if (c.examples.length) {
        const differ = c.examples.filter((e) => e.without !== e.with).length;
        box.append(el("details", { class: "generations" }, el("summary", {}, "example generations on test prompts: " + differ +
          " of " + c.examples.length + " differ from no intervention"), table(["prompt", "request", "without", "with"],
          c.examples.map((e) => [e.id, e.request, el("pre", { class: "out" }, e.without === null ? "–" : e.without),
            el("pre", { class: "out" }, e.with)]), { text: [0, 1, 2, 3], class: "gen" })));
      }
      app.append(box);
    }
  }

  window.tooldiff = { el: el, fmt: fmt, pct: pct, tokenRow: tokenRow, RGB: RGB, DATA: DATA, app: app };
  if (DATA.page === "index") renderIndex(DATA);
  else if (DATA.page === "latent") renderLatent(DATA);
})();
