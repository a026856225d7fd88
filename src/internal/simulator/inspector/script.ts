/**
 * The inspector page's script, served as `/inspector/app.js`: one plain ES module (no
 * framework, no bundler, no dependency), kept as a string so that it compiles into `dist`
 * with the rest and needs no copy step. It reads the JSON API and its Server-Sent Events,
 * and draws on plain canvases. Write it without backticks and `${`: it lives in a template
 * literal (String.raw keeps its backslashes as written).
 *
 * @internal
 */
export const source: string = String.raw`// The simulator's inspector: a plain ES module over the JSON API, no framework, no build.
const API = "/inspector/api";
const FAULTS = ["dropAfterFrames", "stall", "noPong", "occupied", "tooSoon", "errorAfterFrames", "malformed"];

const page = {
  state: null,
  offset: 0,
  details: new Map(),
  fetched: new Map(),
  loading: new Set(),
  again: new Set(),
  players: new Map()
};

const el = (tag, attributes, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) node.append(child);
  return node;
};

const simulatorNow = () => performance.now() + page.offset;
const seconds = (ms) => (ms / 1000).toFixed(2) + " s";
const plural = (n, word) => n + " " + word + (n === 1 ? "" : "s");
const sessionPath = (id) => API + "/sessions/" + encodeURIComponent(id);
const cssEscape = (s) => (window.CSS && CSS.escape ? CSS.escape(s) : s.replace(/["\\]/g, "\\$&"));

// ---- fault switches: the same switches as AvatarSimulator.setFaults and the CLI's flags

const number = (fieldset, name, fallback) => {
  const input = fieldset.querySelector('[data-param="' + name + '"]');
  const value = Number(input ? input.value : fallback);
  return Number.isFinite(value) ? value : fallback;
};

const switchesOf = (fieldset) => {
  const on = (key) => fieldset.querySelector('[data-fault="' + key + '"]').checked;
  const faults = {};
  if (on("dropAfterFrames")) {
    faults.dropAfterFrames = {
      frames: number(fieldset, "dropAfterFrames.frames", 25),
      mode: fieldset.querySelector('[data-param="dropAfterFrames.mode"]').value
    };
  }
  if (on("stall")) faults.stall = true;
  if (on("noPong")) faults.noPong = true;
  if (on("occupied")) faults.occupied = true;
  if (on("tooSoon")) faults.tooSoon = number(fieldset, "tooSoon", 1);
  if (on("errorAfterFrames")) {
    faults.errorAfterFrames = {
      frames: number(fieldset, "errorAfterFrames.frames", 25),
      code: 5000,
      message: "simulated stream error"
    };
  }
  if (on("malformed")) faults.malformed = { afterFrames: number(fieldset, "malformed.afterFrames", 25), count: 8 };
  return faults;
};

const applyFaults = async (fieldset) => {
  const index = Number(fieldset.dataset.instance);
  const current = page.state ? page.state.instances[index].faults : {};
  // the faults the page has no control for (set by the API or the CLI) stay as they are
  const kept = Object.fromEntries(Object.entries(current).filter(([key]) => !FAULTS.includes(key)));
  const faults = Object.assign(kept, switchesOf(fieldset));
  const status = fieldset.querySelector(".fault-status");
  status.textContent = "setting…";
  fieldset.dataset.pending = "true";
  try {
    const response = await fetch(API + "/faults", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ instance: index, faults })
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
    page.state.instances = body.instances;
    status.textContent = Object.keys(faults).length === 0 ? "no faults" : "in force: " + JSON.stringify(faults);
    status.dataset.ok = "true";
  } catch (error) {
    status.textContent = "not set: " + error.message;
    status.dataset.ok = "false";
  } finally {
    delete fieldset.dataset.pending;
  }
};

const control = (key, label, ...extra) =>
  el("label", {}, el("input", { type: "checkbox", "data-fault": key }), " " + label, ...extra);

const numberInput = (name, value) =>
  el("input", { type: "number", min: 1, step: 1, value, "data-param": name, "aria-label": name });

const faultSet = (instance) => {
  const mode = el("select", { "data-param": "dropAfterFrames.mode", "aria-label": "drop mode" });
  mode.append(el("option", { text: "close" }), el("option", { text: "terminate" }));
  const fieldset = el(
    "fieldset",
    { class: "faults", "data-instance": instance.index },
    el("legend", { text: "instance " + instance.index + " · port " + instance.port + " · " + instance.avatarId }),
    control("dropAfterFrames", "drop after", numberInput("dropAfterFrames.frames", 25), " frames, by ", mode),
    control("stall", "stall"),
    control("noPong", "no pong"),
    control("occupied", "occupied"),
    control("tooSoon", "too soon for", numberInput("tooSoon", 1), " attempts"),
    control("errorAfterFrames", "send an error after", numberInput("errorAfterFrames.frames", 25), " frames"),
    control("malformed", "malformed frames after", numberInput("malformed.afterFrames", 25), " frames"),
    el("p", { class: "fault-status", role: "status" })
  );
  fieldset.addEventListener("change", () => applyFaults(fieldset));
  return fieldset;
};

const syncFaults = (fieldset, faults) => {
  if (fieldset.dataset.pending || fieldset.contains(document.activeElement)) return;
  for (const key of FAULTS) fieldset.querySelector('[data-fault="' + key + '"]').checked = key in faults;
  const set = (name, value) => {
    const input = fieldset.querySelector('[data-param="' + name + '"]');
    if (value !== undefined && input) input.value = value;
  };
  set("dropAfterFrames.frames", faults.dropAfterFrames && faults.dropAfterFrames.frames);
  set("dropAfterFrames.mode", faults.dropAfterFrames && (faults.dropAfterFrames.mode || "close"));
  set("tooSoon", faults.tooSoon);
  set("errorAfterFrames.frames", faults.errorAfterFrames && faults.errorAfterFrames.frames);
  set("malformed.afterFrames", faults.malformed && faults.malformed.afterFrames);
};

const renderInstances = (instances) => {
  const root = document.getElementById("instances");
  for (const instance of instances) {
    let fieldset = root.querySelector('[data-instance="' + instance.index + '"]');
    if (!fieldset) {
      fieldset = faultSet(instance);
      root.append(fieldset);
    }
    syncFaults(fieldset, instance.faults);
  }
};

// ---- drawing

const surface = (canvas) => {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 800;
  const height = canvas.clientHeight || 80;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  g.font = "11px system-ui, sans-serif";
  return { g, width, height };
};

const mark = (g, x, height, color, label, row) => {
  g.strokeStyle = color;
  g.fillStyle = color;
  g.setLineDash([4, 3]);
  g.beginPath();
  g.moveTo(x + 0.5, 0);
  g.lineTo(x + 0.5, height);
  g.stroke();
  g.setLineDash([]);
  g.fillText(label, x + 3, 11 + 12 * row);
};

/** Where each drop falls in the received audio: the end of its connection's last frame. */
const dropPositions = (detail) => {
  const ends = new Map();
  let position = 0;
  for (const frame of detail.frameList) {
    position += frame.ms;
    ends.set(frame.connection, position);
  }
  return detail.dropList.map((drop) => ends.get(drop.connection)).filter((p) => p !== undefined);
};

const drawWaveform = (canvas, detail) => {
  const { g, width, height } = surface(canvas);
  const { min, max, bucketMs } = detail.waveform;
  const duration = detail.audioMs;
  canvas.dataset.durationMs = String(duration);
  canvas.dataset.buckets = String(min.length);
  g.fillStyle = "#f4f6f8";
  g.fillRect(0, 0, width, height);
  if (duration <= 0) {
    g.fillStyle = "#666";
    g.fillText(detail.recordsAudio ? "no audio yet" : "audio not recorded (recordAudio: false)", 8, height / 2);
    return;
  }
  const mid = height / 2;
  g.strokeStyle = "#2563eb";
  g.beginPath();
  for (let i = 0; i < min.length; i++) {
    const x = Math.floor(((i * bucketMs) / duration) * width) + 0.5;
    g.moveTo(x, mid - max[i] * mid * 0.95);
    g.lineTo(x, mid - min[i] * mid * 0.95 + 1);
  }
  g.stroke();
  for (const position of dropPositions(detail)) {
    mark(g, (position / duration) * width, height, "#dc2626", "drop", 0);
  }
  g.fillStyle = "#333";
  g.fillText(seconds(duration), width - 48, height - 4);
};

/** The strips' time axis: from the session's first connection to now while it lives. */
const span = (detail) => {
  const from = detail.openedAt;
  const ends = detail.segments.map((s) => s.endedAt);
  const live = detail.state === "live" || detail.speaking;
  const to = Math.max(detail.lastAt, ...ends, live ? simulatorNow() : 0, from + 1000);
  return { from, to, x: (t, width) => ((t - from) / (to - from)) * width };
};

const drawTiming = (canvas, detail) => {
  const { g, width, height } = surface(canvas);
  const axis = span(detail);
  const frames = detail.frameList;
  const late = frames.filter((f) => f.late);
  canvas.dataset.frames = String(frames.length);
  canvas.dataset.late = String(late.length);
  canvas.dataset.drops = String(detail.dropList.length);
  canvas.dataset.reconnects = String(detail.reconnectList.length);
  g.fillStyle = "#f4f6f8";
  g.fillRect(0, 0, width, height);
  const scale = Math.max(detail.playoutDelayMs, ...frames.map((f) => Math.abs(f.lateness || 0)), 1);
  const zero = height * 0.5;
  g.strokeStyle = "#999";
  g.beginPath();
  g.moveTo(0, zero + 0.5);
  g.lineTo(width, zero + 0.5);
  g.stroke();
  for (const frame of frames) {
    const x = axis.x(frame.at, width);
    const size = frame.lateness === null ? 2 : (frame.lateness / scale) * (height * 0.45);
    g.fillStyle = frame.late ? "#dc2626" : frame.lateness === null ? "#111" : "#94a3b8";
    g.fillRect(x, Math.min(zero, zero - size), Math.max(1.5, width / 1500), Math.max(1, Math.abs(size)));
  }
  for (const drop of detail.dropList) mark(g, axis.x(drop.at, width), height, "#dc2626", "drop", 0);
  for (const again of detail.reconnectList) mark(g, axis.x(again.at, width), height, "#16a34a", "reconnect", 1);
  g.fillStyle = "#333";
  g.fillText("late ↑ / early ↓ (±" + Math.round(scale) + " ms)", 4, height - 4);
};

const drawPlayback = (canvas, detail) => {
  const { g, width, height } = surface(canvas);
  const axis = span(detail);
  canvas.dataset.segments = String(detail.segments.length);
  canvas.dataset.interrupts = String(detail.segments.filter((s) => s.interrupted).length);
  g.fillStyle = "#f4f6f8";
  g.fillRect(0, 0, width, height);
  for (const segment of detail.segments) {
    const x0 = axis.x(segment.startedAt, width);
    const x1 = axis.x(segment.endedAt, width);
    g.fillStyle = segment.playing ? "#86efac" : "#22c55e";
    g.fillRect(x0, height * 0.25, Math.max(1, x1 - x0), height * 0.5);
    if (segment.interrupted) mark(g, x1, height, "#ea580c", "interrupt", 0);
  }
  const now = simulatorNow();
  if (now >= axis.from && now <= axis.to) {
    const x = axis.x(now, width);
    g.strokeStyle = "#111";
    g.beginPath();
    g.moveTo(x + 0.5, 0);
    g.lineTo(x + 0.5, height);
    g.stroke();
    canvas.dataset.cursor = String(Math.round(now - axis.from));
  }
  g.fillStyle = "#333";
  g.fillText(seconds(axis.to - axis.from), width - 48, height - 4);
};

// ---- sessions

const cell = (text) => el("td", { text });
const at = (detail, t) => (t === null || t === undefined ? "" : "+" + seconds(t - detail.openedAt));

const renderTables = (article, detail) => {
  const commands = article.querySelector("tbody.commands");
  commands.replaceChildren(
    ...detail.commandList.map((c) =>
      el(
        "tr",
        {},
        cell(c.cmd),
        cell(at(detail, c.at)),
        cell(c.answer ? c.answer.kind + " " + at(detail, c.answer.at) : "no answer"),
        el("td", {}, el("code", { text: JSON.stringify(c.pld) }))
      )
    )
  );
  const connections = article.querySelector("tbody.connections");
  connections.replaceChildren(
    ...detail.connectionList.map((c) =>
      el(
        "tr",
        {},
        cell("#" + c.id + " on instance " + c.instance),
        cell(at(detail, c.openedAt)),
        cell(c.closedAt === null ? "open" : at(detail, c.closedAt)),
        cell(c.refusedWith ? "refused " + c.refusedWith : c.dropped ? "dropped (" + c.closeCode + ")" : c.closeCode || ""),
        cell(String(c.frames))
      )
    )
  );
  const marks = article.querySelector("ul.marks");
  marks.replaceChildren(
    ...detail.dropList.map((d) => el("li", { class: "mark drop", text: "drop " + at(detail, d.at) + " (" + d.code + ")" })),
    ...detail.reconnectList.map((r) => el("li", { class: "mark reconnect", text: "reconnect " + at(detail, r.at) })),
    ...detail.frameList
      .filter((f) => f.late)
      .map((f) => el("li", { class: "mark late", text: "late frame " + at(detail, f.at) + " by " + f.lateness + " ms" })),
    ...detail.interrupts.map((t) => el("li", { class: "mark interrupt", text: "interrupt " + at(detail, t) }))
  );
};

const draw = (article, detail) => {
  drawWaveform(article.querySelector("canvas.waveform"), detail);
  drawTiming(article.querySelector("canvas.timing"), detail);
  drawPlayback(article.querySelector("canvas.playback"), detail);
};

const play = (button, id) => {
  const playing = page.players.get(id);
  if (playing) {
    playing.pause();
    page.players.delete(id);
    button.textContent = "▶ Play";
    return;
  }
  const audio = new Audio(sessionPath(id) + "/audio.wav?t=" + Date.now());
  page.players.set(id, audio);
  button.textContent = "■ Stop";
  const done = () => {
    page.players.delete(id);
    button.textContent = "▶ Play";
  };
  audio.addEventListener("ended", done);
  audio.play().catch(done);
};

const figure = (caption, name) => el("figure", {}, el("figcaption", { text: caption }), el("canvas", { class: name }));

const table = (name, ...heads) =>
  el("table", {}, el("thead", {}, el("tr", {}, ...heads.map((h) => el("th", { text: h })))), el("tbody", { class: name }));

const sessionArticle = (summary) => {
  const button = el("button", { type: "button", class: "play", text: "▶ Play" });
  button.addEventListener("click", () => play(button, summary.id));
  return el(
    "article",
    { class: "session", "data-session-id": summary.id },
    el("header", {}, el("h2", { class: "session-id", text: summary.id }), el("span", { class: "state" }), el("p", { class: "facts" })),
    el(
      "div",
      { class: "actions" },
      button,
      el("a", { class: "download", href: sessionPath(summary.id) + "/audio.wav", download: "", text: "Download WAV" })
    ),
    figure("Received audio, as it arrived", "waveform"),
    figure("Arrival: each frame against its slot (late frames red), drops and reconnects", "timing"),
    figure("Playback the simulator emulates: speaking segments, the play cursor, interrupts", "playback"),
    el("ul", { class: "marks" }),
    el("p", { class: "faults-in-force" }),
    el("details", {}, el("summary", { text: "set-params (the Agora token masked)" }), el("pre", { class: "set-params" })),
    el("details", { open: true }, el("summary", { text: "commands and their answers" }), table("commands", "command", "at", "answer", "payload")),
    el("details", {}, el("summary", { text: "connections" }), table("connections", "connection", "opened", "closed", "how", "frames"))
  );
};

const renderSummary = (article, s) => {
  const state = article.querySelector(".state");
  state.textContent = s.speaking ? "speaking" : s.state;
  state.className = "state " + s.state;
  article.dataset.state = s.state;
  article.querySelector(".facts").textContent = [
    "avatar " + s.avatarId,
    "instance " + s.instance,
    plural(s.connections, "connection"),
    plural(s.reconnects, "reconnect"),
    plural(s.drops, "drop"),
    plural(s.frames, "frame"),
    seconds(s.audioMs) + " received",
    seconds(s.playedMs) + " played"
  ].join(" · ");
  const faults = Object.keys(s.faults);
  article.querySelector(".faults-in-force").textContent =
    "faults in force now on instance " + s.instance + ": " + (faults.length === 0 ? "none" : JSON.stringify(s.faults));
  article.querySelector(".set-params").textContent = s.setParams === null ? "none received" : JSON.stringify(s.setParams, null, 2);
};

const load = async (id) => {
  if (page.loading.has(id)) {
    page.again.add(id);
    return;
  }
  page.loading.add(id);
  try {
    const response = await fetch(sessionPath(id));
    if (response.ok) {
      const detail = await response.json();
      page.details.set(id, detail);
      const article = document.querySelector('article[data-session-id="' + cssEscape(id) + '"]');
      if (article) {
        renderTables(article, detail);
        draw(article, detail);
      }
    }
  } finally {
    page.loading.delete(id);
    if (page.again.delete(id)) load(id);
  }
};

const renderSessions = (sessions) => {
  const root = document.getElementById("sessions");
  document.getElementById("empty").hidden = sessions.length > 0;
  for (const summary of sessions) {
    let article = root.querySelector('article[data-session-id="' + cssEscape(summary.id) + '"]');
    if (!article) {
      article = sessionArticle(summary);
      root.prepend(article);
    }
    renderSummary(article, summary);
    const key = JSON.stringify(summary);
    if (page.fetched.get(summary.id) !== key) {
      page.fetched.set(summary.id, key);
      load(summary.id);
    }
  }
};

const onState = (state) => {
  page.state = state;
  page.offset = state.now - performance.now();
  document.getElementById("discovery").textContent = state.discoveryUrl;
  document.getElementById("playout").textContent = state.playoutDelayMs + " ms";
  renderInstances(state.instances);
  renderSessions(state.sessions);
};

const connect = () => {
  const status = document.getElementById("connection");
  const events = new EventSource(API + "/events");
  events.addEventListener("state", (event) => onState(JSON.parse(event.data)));
  events.addEventListener("open", () => {
    status.textContent = "live";
    status.className = "live";
  });
  events.addEventListener("error", () => {
    status.textContent = "simulator gone (retrying)";
    status.className = "gone";
  });
};

// the play cursor and the time axis of the live sessions move between updates
setInterval(() => {
  for (const [id, detail] of page.details) {
    if (detail.state !== "live" && !detail.speaking) continue;
    const article = document.querySelector('article[data-session-id="' + cssEscape(id) + '"]');
    if (article) {
      drawTiming(article.querySelector("canvas.timing"), detail);
      drawPlayback(article.querySelector("canvas.playback"), detail);
    }
  }
}, 200);
window.addEventListener("resize", () => {
  for (const [id, detail] of page.details) {
    const article = document.querySelector('article[data-session-id="' + cssEscape(id) + '"]');
    if (article) draw(article, detail);
  }
});

connect();
`
