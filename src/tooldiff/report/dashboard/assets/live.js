/* tooldiff live panel: a prompt with tools, the chosen latent at every token, and a steering dial.
   It only calls the server's own API (same origin): GET /v1/models, GET /v1/steering/features,
   POST /v1/steering/activations and POST /v1/chat/completions with the `steering` field. The
   server checks and caps every request as it does for any client. */
(function () {
  "use strict";
  const T = window.tooldiff, el = T.el, app = T.app, DATA = T.DATA;
  const KNOBS = {
    steer: { name: "alpha", min: -8, max: 64, step: 1, start: 1, help: "α (1 = no change)" },
    add: { name: "dose", min: -3, max: 3, step: 0.05, start: 0, help: "relative dose c (0 = no change)" },
    ablate: null,
  };
  const params = new URLSearchParams(location.search);

  app.append(el("div", { class: "small" }, el("a", { href: "index.html" }, "← index")), el("h1", {}, "Live panel"));
  if (location.protocol === "file:") {
    app.append(el("div", { class: "note", id: "offline" }, "The live panel talks to a running server. Start it with " +
      "`tooldiff serve --model RL_DIR --crosscoder CROSSCODER_DIR --dashboard THIS_DIR` and open " +
      "http://127.0.0.1:PORT/dashboard/live.html"));
    return;
  }

  const status = el("div", { class: "muted", id: "status" }, "connecting…");
  const example = el("select", { id: "example" }, DATA.examples.map((e, i) =>
    el("option", { value: String(i) }, e.kind + " · " + e.id + " · " + e.messages[e.messages.length - 1].content)));
  const tools = el("textarea", { id: "tools", spellcheck: "false" });
  const message = el("input", { type: "text", id: "message" });
  const latent = el("input", { type: "number", id: "latent", min: "0", step: "1" });
  const op = el("select", { id: "op" }, Object.keys(KNOBS).map((o) => el("option", { value: o }, o)));
  const positions = el("select", { id: "positions" }, ["last_prompt", "prompt", "generated", "all"].map((p) =>
    el("option", { value: p }, p)));
  const slider = el("input", { type: "range", id: "knob" });
  const knobValue = el("span", { id: "knob-value" });
  const apiKey = el("input", { type: "password", id: "api-key", placeholder: "only if the server has one" });
  const run = el("button", { id: "run", type: "button" }, "Run");
  const tokensBox = el("div", { id: "tokens", class: "answer", "data-state": "empty" });
  const off = el("div", { id: "answer-off", class: "answer", "data-state": "empty" });
  const on = el("div", { id: "answer-on", class: "answer", "data-state": "empty" });

  app.append(status, el("form", { class: "live-form", onsubmit: (e) => e.preventDefault() },
    el("label", { for: "example" }, "example"), example,
    el("label", { for: "tools" }, "tools (JSON)"), tools,
    el("label", { for: "message" }, "user message"), message,
    el("label", { for: "latent" }, "latent"), el("div", {}, latent, " ", el("span", { id: "latent-info", class: "muted small" })),
    el("label", { for: "op" }, "op"), el("div", {}, op, " positions ", positions),
    el("label", { for: "knob" }, "dial"), el("div", {}, slider, " ", knobValue),
    el("label", { for: "api-key" }, "API key"), apiKey,
    el("span", {}), el("div", {}, run)),
  el("h2", {}, "The latent at every prompt token (the served model's activations)"), tokensBox,
  el("div", { class: "answers" },
    el("div", {}, el("h3", {}, "without steering"), off),
    el("div", {}, el("h3", {}, "with steering"), on)));

  let model = null, served = null, pending = 0;

  function headers() {
    const h = { "Content-Type": "application/json" };
    if (apiKey.value) h.Authorization = "Bearer " + apiKey.value;
    return h;
  }
  async function call(path, body) {
    const r = await fetch(path, body === undefined ? { headers: headers() } :
      { method: "POST", headers: headers(), body: JSON.stringify(body) });
    const j = await r.json();
    if (!r.ok) throw new Error((j.error && j.error.message) || r.statusText);
    return j;
  }
  function request() {
    let parsed;
    try { parsed = JSON.parse(tools.value || "[]"); } catch (e) { throw new Error("tools: not valid JSON (" + e.message + ")"); }
    return { model: model, messages: [{ role: "user", content: message.value }], tools: parsed.length ? parsed : undefined };
  }
  function setKnob() {
    const k = KNOBS[op.value];
    slider.disabled = !k;
    if (k) {
      slider.min = k.min; slider.max = k.max; slider.step = k.step; slider.value = k.start;
    }
    showKnob();
  }
  function showKnob() {
    const k = KNOBS[op.value];
    knobValue.textContent = k ? k.help + " = " + slider.value : "no knob: removes the latent's f·d";
  }
  function steering() {
    const k = KNOBS[op.value];
    const item = { op: op.value, feature: [Number(latent.value)], positions: positions.value };
    if (k) item[k.name] = Number(slider.value);
    return [item];
  }
  function showAnswer(box, body, knob) {
    const msg = body.choices[0].message;
    const calls = (msg.tool_calls || []).map((c) => c.function.name + "(" + c.function.arguments + ")");
    box.replaceChildren(
      el("div", { class: "small muted" }, "finish: " + body.choices[0].finish_reason),
      el("pre", { class: "out content" }, msg.content || ""),
      el("div", { class: "calls" }, calls.length ? el("b", {}, "tool call: ") : el("span", { class: "muted" }, "no tool call"),
        calls.join("; ")));
    box.setAttribute("data-state", "ready");
    box.setAttribute("data-knob", knob);
    box.setAttribute("data-text", (msg.content || "") + "|" + calls.join(";"));
  }
  function fail(box, e) {
    box.replaceChildren(el("div", { class: "note" }, String(e.message || e)));
    box.setAttribute("data-state", "error");
  }

  async function answer(box, steer, knob) {
    box.setAttribute("data-state", "busy");
    try {
      showAnswer(box, await call("/v1/chat/completions", Object.assign(request(),
        { temperature: 0, max_tokens: 48, steering: steer })), knob);
    } catch (e) { fail(box, e); }
  }
  async function activations() {
    tokensBox.setAttribute("data-state", "busy");
    try {
      const j = await call("/v1/steering/activations", Object.assign(request(), { features: [Number(latent.value)] }));
      const acts = j.features[0].activations;
      const top = Math.max(0, ...acts);
      tokensBox.replaceChildren(T.tokenRow(j.tokens, acts, top, T.RGB.rl, ""),
        el("div", { class: "small muted" }, "max " + T.fmt(top) + " · fires on " + acts.filter((v) => v > 0).length +
          " of " + acts.length + " tokens"));
      tokensBox.setAttribute("data-state", "ready");
    } catch (e) { fail(tokensBox, e); }
  }
  async function runAll() {
    const id = ++pending;
    status.textContent = "running…";
    await Promise.all([activations(), answer(off, [], "none"), answer(on, steering(), slider.value)]);
    if (id === pending) status.textContent = "model " + model + " · crosscoder " + (served || "?");
  }
  let timer = null;
  function redial() {
    showKnob();
    clearTimeout(timer);
    on.setAttribute("data-state", "busy");
    timer = setTimeout(() => answer(on, steering(), slider.value), 200);
  }
  function loadExample() {
    const e = DATA.examples[Number(example.value)];
    if (!e) return;
    tools.value = JSON.stringify(e.tools, null, 1);
    message.value = e.messages[e.messages.length - 1].content;
  }

  example.addEventListener("change", loadExample);
  op.addEventListener("change", () => { setKnob(); redial(); });
  positions.addEventListener("change", redial);
  slider.addEventListener("input", redial);
  run.addEventListener("click", runAll);
  loadExample();
  op.value = "add";
  setKnob();

  (async function start() {
    try {
      model = (await call("/v1/models")).data[0].id;
      const f = await call("/v1/steering/features?limit=1000");
      served = f.crosscoder;
      const wanted = params.get("crosscoder");
      const first = f.data.find((r) => r.steerable) || f.data[0];
      latent.value = params.get("latent") || (first ? first.latent : 0);
      latent.max = f.dict_size - 1;
      document.getElementById("latent-info").textContent = "crosscoder " + served + ", " + f.dict_size + " latents, layer " +
        f.layer + (wanted && wanted !== served ? " · this server serves " + served + ", not " + wanted : "");
      status.textContent = "model " + model + " · crosscoder " + served + " · ready";
      status.setAttribute("data-ready", "1");
    } catch (e) {
      status.textContent = "the server did not answer: " + e.message;
    }
  })();
})();
