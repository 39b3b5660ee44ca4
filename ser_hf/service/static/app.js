// ser_hf web page: upload, record and live modes against the service's own endpoints.
// Plain browser JavaScript with no dependencies: the server may have no network, so nothing comes from a CDN.
"use strict";

const PALETTE = ["#2f6fdd", "#e0562b", "#2a9d5b", "#8e44ad", "#d4a21c", "#17a2b8", "#c0392b", "#6c757d",
  "#ff7f50", "#556b2f", "#ad1457", "#00897b"];
const state = { labels: [], limits: {}, colors: {}, live: null, recorder: null, speakerAdaptation: false };
const $ = (id) => document.getElementById(id);

function setStatus(text) { $("status").textContent = text; }

// API key (servers started with one): asked once, kept in sessionStorage (this tab only, never in a URL),
// sent as the X-API-Key header, and to the WebSocket as a subprotocol (browsers cannot set its headers).
const KEY_STORE = "ser-hf-api-key";
function apiKey() { return sessionStorage.getItem(KEY_STORE) || ""; }
function keyHeaders(headers) { return apiKey() ? { ...headers, "X-API-Key": apiKey() } : headers; }
function streamProtocols() {
  const key = apiKey();
  if (!key) return ["ser-hf"];
  const encoded = btoa(String.fromCharCode(...new TextEncoder().encode(key)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return ["ser-hf", "ser-hf.key." + encoded];
}
function askForKey(message) {
  $("key-message").textContent = message;
  $("key-panel").hidden = false;
  $("key").focus();
}
function saveKey(event) {
  event.preventDefault();
  const key = $("key").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORE, key);
  $("key").value = "";
  $("key-panel").hidden = true;
  showError("");
  setStatus("API key saved for this tab.");
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function color(label) {
  if (!(label in state.colors)) {
    state.colors[label] = PALETTE[Object.keys(state.colors).length % PALETTE.length];
  }
  return state.colors[label];
}

function percent(value) { return (100 * value).toFixed(1) + "%"; }

// Bars: one row per emotion, in the model's label order so rows do not jump between updates.
function renderBars(scores, label) {
  const box = $("bars");
  box.textContent = "";
  const labels = state.labels.length ? state.labels : Object.keys(scores);
  for (const name of labels) {
    const value = scores[name] || 0;
    const row = document.createElement("div");
    row.className = "bar";
    row.dataset.label = name;
    row.dataset.score = String(value);
    const title = document.createElement("span");
    title.className = "name";
    title.textContent = name;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = percent(value);
    fill.style.background = color(name);
    track.appendChild(fill);
    const text = document.createElement("span");
    text.className = "value";
    text.textContent = percent(value);
    row.append(title, track, text);
    box.appendChild(row);
  }
  $("result-label").textContent = label ? label + " (" + percent(scores[label] || 0) + ")" : "no voiced audio";
}

function svg(tag, attributes) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  return element;
}

// Timeline: the winning emotion as a coloured strip, and every emotion's probability as a line.
function renderTimeline(windows, duration) {
  const box = $("timeline");
  box.textContent = "";
  $("timeline-box").hidden = windows.length === 0;
  if (!windows.length) return;
  const width = 860, strip = 18, plot = 150, pad = 28;
  const end = Math.max(duration || 0, windows[windows.length - 1].end, 1e-3);
  const start = windows[0].start;
  const x = (t) => pad + ((t - start) / Math.max(end - start, 1e-3)) * (width - 2 * pad);
  const y = (p) => strip + 10 + (1 - p) * plot;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${strip + plot + 34}`, role: "img",
    "aria-label": "emotion probabilities over time" });
  windows.forEach((w, i) => {
    // Overlapping windows: each one owns the time until the next one starts.
    const until = i + 1 < windows.length ? Math.min(w.end, windows[i + 1].start) : w.end;
    const rect = svg("rect", { x: x(w.start), y: 4, width: Math.max(1, x(until) - x(w.start)), height: strip,
      fill: color(w.label), class: "segment", "data-label": w.label });
    const tip = svg("title", {});
    tip.textContent = `${w.start.toFixed(1)}–${w.end.toFixed(1)} s: ${w.label} ${percent(w.score)}`;
    rect.appendChild(tip);
    chart.appendChild(rect);
  });
  const labels = state.labels.length ? state.labels : Object.keys(windows[0].scores);
  for (const name of labels) {
    const points = windows.map((w) => `${x((w.start + w.end) / 2).toFixed(1)},${y(w.scores[name] || 0).toFixed(1)}`);
    chart.appendChild(svg("polyline", { points: points.join(" "), fill: "none", stroke: color(name),
      "stroke-width": 2, "data-label": name }));
  }
  for (const p of [0.5, 1]) {
    chart.appendChild(svg("line", { x1: pad, x2: width - pad, y1: y(p), y2: y(p), stroke: "#e1e6eb" }));
    const mark = svg("text", { x: 2, y: y(p) + 4, "font-size": 11, fill: "#5d6b78" });
    mark.textContent = `${100 * p}%`;
    chart.appendChild(mark);
  }
  chart.appendChild(svg("line", { x1: pad, x2: width - pad, y1: y(0), y2: y(0), stroke: "#9aa7b4" }));
  for (const t of [start, (start + end) / 2, end]) {
    const tick = svg("text", { x: x(t), y: y(0) + 16, "font-size": 12, "text-anchor": "middle", fill: "#5d6b78" });
    tick.textContent = t.toFixed(1) + " s";
    chart.appendChild(tick);
  }
  box.appendChild(chart);
  const legend = $("legend");
  legend.textContent = "";
  for (const name of labels) {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color(name);
    item.append(swatch, name);
    legend.appendChild(item);
  }
}

function showPrediction(result, source) {
  showError("");
  $("result-source").textContent = "· " + source;
  renderBars(result.scores || {}, result.label);
  renderTimeline(result.timeline || [], result.duration);
  const kind = result.timeline ? `timeline of ${result.timeline.length} voiced windows` : "whole clip";
  setStatus(`${result.duration.toFixed(2)} s of audio, ${kind}.`);
}

async function postForPrediction(url, body, headers, source) {
  setStatus("Scoring…");
  showError("");
  let response;
  try {
    response = await fetch(url, { method: "POST", body, headers: keyHeaders(headers) });
  } catch (err) {
    showError("The server could not be reached: " + err);
    return;
  }
  const payload = await response.json().catch(() => ({ detail: response.statusText }));
  if (response.status === 401) {
    sessionStorage.removeItem(KEY_STORE);
    setStatus("");
    askForKey(`The server refused the request: ${payload.detail} Enter the key, then try again.`);
    return;
  }
  if (!response.ok) {
    setStatus("");
    showError(`${response.status}: ${payload.detail}`);
    return;
  }
  showPrediction(payload, source);
}

async function upload(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) { showError("Choose an audio file first."); return; }
  if (state.limits.max_upload_bytes && file.size > state.limits.max_upload_bytes) {
    showError(`${file.name} has ${file.size} bytes; the server accepts at most ${state.limits.max_upload_bytes}.`);
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  await postForPrediction("/predict", form, {}, file.name);
}

// Microphone capture: a ScriptProcessorNode hands us Float32 blocks on the main thread. It is deprecated
// in favour of AudioWorklet, but needs no extra module file and works in every browser we test with.
async function openMicrophone(onChunk) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("this browser gives no microphone access here (pages need https or localhost for it)");
  }
  const media = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
  const context = new AudioContext();
  await context.resume();
  const source = context.createMediaStreamSource(media);
  const processor = context.createScriptProcessor(4096, 1, 1);
  processor.onaudioprocess = (event) => onChunk(new Float32Array(event.inputBuffer.getChannelData(0)));
  source.connect(processor);
  processor.connect(context.destination); // it only runs when connected; its output stays silent
  return {
    rate: context.sampleRate,
    close: () => {
      processor.disconnect();
      source.disconnect();
      media.getTracks().forEach((track) => track.stop());
      return context.close();
    },
  };
}

async function startRecording() {
  showError("");
  const chunks = [];
  let samples = 0;
  let rate = 0; // known once the microphone is open; blocks arriving before that are kept all the same
  try {
    const mic = await openMicrophone((chunk) => {
      chunks.push(chunk);
      samples += chunk.length;
      if (!rate) return;
      $("record-time").textContent = (samples / rate).toFixed(1) + " s";
      if (state.limits.max_duration && samples / rate >= state.limits.max_duration) stopRecording();
    });
    rate = mic.rate;
    state.recorder = { mic, chunks, samples: () => samples };
  } catch (err) {
    showError("Cannot record: " + err.message);
    return;
  }
  $("record").disabled = true;
  $("record-stop").disabled = false;
  setStatus("Recording…");
}

async function stopRecording() {
  const recorder = state.recorder;
  if (!recorder) return;
  state.recorder = null;
  $("record").disabled = false;
  $("record-stop").disabled = true;
  await recorder.mic.close();
  const total = recorder.samples();
  if (!total) { showError("Nothing was recorded."); return; }
  const all = new Float32Array(total);
  let offset = 0;
  for (const chunk of recorder.chunks) { all.set(chunk, offset); offset += chunk.length; }
  // Raw float32 samples (little-endian on every platform browsers run on) to the PCM endpoint.
  await postForPrediction(`/predict/pcm?sampling_rate=${recorder.mic.rate}&dtype=float32`, all.buffer,
    { "content-type": "application/octet-stream" }, "recording");
}

function liveMessage(event) {
  const live = state.live;
  const message = JSON.parse(event.data);
  if (message.type === "ready") {
    live.ready = true;
    setStatus(message.adapt ? "Live: listening, learning your voice…" : "Live: listening…");
    live.pending.forEach((chunk) => live.socket.send(chunk.buffer));
    live.pending = [];
  } else if (message.type === "window") {
    live.windows.push(message);
    if (live.windows.length > 300) live.windows.shift();
    $("live-count").textContent = String(Number($("live-count").textContent) + 1);
    $("result-source").textContent = "· live";
    renderBars(message.scores, message.label);
    renderTimeline(live.windows, message.end);
    // With adapt, each window says whether the speaker-adaptive head scored it.
    const voice = message.adapted === undefined ? "" :
      (message.adapted ? " · adapted to your voice" : " · learning your voice");
    setStatus(`Live: window ${message.start.toFixed(1)}–${message.end.toFixed(1)} s${voice}`);
  } else if (message.type === "done") {
    setStatus(`Live stream ended after ${message.seconds.toFixed(1)} s.`);
  } else if (message.type === "error") {
    showError("Live: " + message.detail);
    if (/API key/.test(message.detail)) {
      sessionStorage.removeItem(KEY_STORE);
      askForKey("Live mode needs the API key: enter it, then start live mode again.");
    }
  }
}

async function startLive() {
  showError("");
  $("live-count").textContent = "0";
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const live = { ready: false, pending: [], windows: [], socket: null, mic: null };
  state.live = live;
  try {
    live.mic = await openMicrophone((chunk) => {
      if (live.ready && live.socket.readyState === WebSocket.OPEN) live.socket.send(chunk.buffer);
      else if (!live.ready && live.pending.length < 100) live.pending.push(chunk);
    });
  } catch (err) {
    state.live = null;
    showError("Cannot start live mode: " + err.message);
    return;
  }
  live.socket = new WebSocket(`${scheme}://${location.host}/stream`, streamProtocols());
  live.socket.binaryType = "arraybuffer";
  const config = { sampling_rate: live.mic.rate, dtype: "float32", window: 3.0, hop: 1.0 };
  if (state.speakerAdaptation && $("live-adapt").checked) config.adapt = true;
  live.socket.onopen = () => live.socket.send(JSON.stringify(config));
  live.socket.onmessage = liveMessage;
  live.socket.onclose = (event) => {
    if (event.code !== 1000 && event.code !== 1005 && state.live === live) {
      showError(`Live connection closed (${event.code}${event.reason ? ": " + event.reason : ""}).`);
    }
    stopLive(false);
  };
  $("live-start").disabled = true;
  $("live-stop").disabled = false;
  setStatus("Live: connecting…");
}

async function stopLive(sendEnd = true) {
  const live = state.live;
  if (!live) return;
  state.live = sendEnd ? live : null;
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
  if (live.mic) { const mic = live.mic; live.mic = null; await mic.close(); }
  if (sendEnd && live.socket && live.socket.readyState === WebSocket.OPEN) {
    live.socket.send(JSON.stringify({ type: "end" })); // the server answers with the last window and "done"
  }
}

async function loadInfo() {
  try {
    const health = await (await fetch("/health")).json();
    state.labels = health.labels;
    state.labels.forEach(color);
    state.limits = health.limits;
    $("model-info").textContent = `Model “${health.model}” predicts ${health.labels.join(", ")}. ` +
      `Up to ${(health.limits.max_upload_bytes / 1048576).toFixed(0)} MiB and ${health.limits.max_duration} s per file.`;
    $("timeline-after").textContent = String(health.limits.timeline_after);
    state.speakerAdaptation = Boolean(health.speaker_adaptation);
    $("live-adapt-option").hidden = !state.speakerAdaptation;
    if (health.api_key_required && !apiKey()) askForKey("This server needs an API key. It is kept for this browser tab only.");
  } catch (err) {
    $("model-info").textContent = "Model information unavailable: " + err;
  }
}

$("key-form").addEventListener("submit", saveKey);
$("upload-form").addEventListener("submit", upload);
$("record").addEventListener("click", startRecording);
$("record-stop").addEventListener("click", stopRecording);
$("live-start").addEventListener("click", startLive);
$("live-stop").addEventListener("click", () => stopLive(true));
loadInfo();
