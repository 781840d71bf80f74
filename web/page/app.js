// resq's page: a picked, dropped or pasted image becomes a job; the card shows its
// status live (long-polling GET /jobs/<id>?wait=) and then its top-5 as bars. Many
// images, or a folder, become a batch: a progress bar fed by its events stream
// (GET /batches/<id>/events) and a table of its results as they end
// (GET /batches/<id>/results, JSON Lines).
"use strict";

const jobsEl = document.getElementById("jobs");
const template = document.getElementById("job-card");
const keyInput = document.getElementById("api-key");
keyInput.value = localStorage.getItem("resq-api-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("resq-api-key", keyInput.value));

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (keyInput.value) h["Authorization"] = "Bearer " + keyInput.value;
  return h;
}

function newCard(name, thumbnail) {
  const card = template.content.firstElementChild.cloneNode(true);
  card.querySelector(".name").textContent = name;
  if (thumbnail) card.querySelector("img").src = thumbnail;
  jobsEl.prepend(card);
  return card;
}

function setStatus(card, text, failed) {
  const el = card.querySelector(".status");
  el.textContent = text;
  el.classList.toggle("failed", Boolean(failed));
  card.dataset.status = failed ? "failed" : text.split(" ")[0];
}

function showResult(card, job) {
  const list = card.querySelector(".bars");
  list.replaceChildren();
  for (const p of job.result.predictions.slice(0, 5)) {
    const item = document.createElement("li");
    item.className = "bar";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = p.label;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = (p.score * 100).toFixed(1) + "%";
    track.append(fill);
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = (p.score * 100).toFixed(1) + "%";
    item.append(label, track, score);
    list.append(item);
  }
  const ms = job.result.timing_ms.total;
  setStatus(card, "succeeded in " + Math.round(ms) + " ms");
}

async function readJson(response) {
  try { return await response.json(); } catch (e) { return {}; }
}

function explain(body, response) {
  const error = body && body.error;
  if (error) return error.message + " (" + error.code + ")";
  return "the server answered " + response.status + " " + response.statusText;
}

async function follow(card, job) {
  while (job.status === "queued" || job.status === "started") {
    setStatus(card, job.status + "…");
    const response = await fetch("/jobs/" + job.id + "?wait=10", {headers: headers()});
    const body = await readJson(response);
    if (!response.ok) {
      if (response.status === 503 || response.status === 429) {
        await new Promise(r => setTimeout(r, 1000 * (Number(response.headers.get("Retry-After")) || 1)));
        continue;
      }
      setStatus(card, explain(body, response), true);
      return;
    }
    job = body;
  }
  if (job.status === "succeeded") showResult(card, job);
  else setStatus(card, "failed: " + job.error.message + " (" + job.error.code + ")", true);
}

async function submit(card, request) {
  setStatus(card, "sending…");
  let response;
  try {
    response = await fetch("/jobs", request);
  } catch (e) {
    setStatus(card, "the server could not be reached", true);
    return;
  }
  const body = await readJson(response);
  if (!response.ok) {
    setStatus(card, explain(body, response), true);
    return;
  }
  card.dataset.jobId = body.id;
  await follow(card, body);
}

function submitFile(file) {
  const card = newCard(file.name, URL.createObjectURL(file));
  const form = new FormData();
  form.append("image", file, file.name);
  return submit(card, {method: "POST", body: form, headers: headers()});
}

function submitUrl(url) {
  const card = newCard(url, null);
  return submit(card, {method: "POST", body: JSON.stringify({url: url}),
                       headers: headers({"Content-Type": "application/json"})});
}

// --- batches ----------------------------------------------------------------------
const batchesEl = document.getElementById("batches");
const batchTemplate = document.getElementById("batch-card");

function isImage(file) {
  return file.type.startsWith("image/") || /\.(jpe?g|png|webp|gif|bmp|tiff?)$/i.test(file.name);
}

// Reads a streamed answer (with the API key's header, which an EventSource cannot
// send) and calls onChunk with each piece of text as it comes.
async function readStream(url, extraHeaders, onChunk) {
  const response = await fetch(url, {headers: headers(extraHeaders)});
  if (!response.ok) throw new Error(explain(await readJson(response), response));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const {done, value} = await reader.read();
    if (done) return;
    onChunk(decoder.decode(value, {stream: true}));
  }
}

// Server-Sent Events over fetch: each event's data to onEvent; when the server ends
// the stream before the batch ends, it is opened again with Last-Event-ID.
async function followEvents(url, onEvent) {
  let lastId = null, retry = 1000, ended = false;
  while (!ended) {
    let buffer = "";
    await readStream(url, lastId === null ? {} : {"Last-Event-ID": lastId}, text => {
      buffer += text;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const fields = {};
        for (const line of block.split("\n")) {
          const at = line.indexOf(": ");
          if (at > 0 && !line.startsWith(":")) fields[line.slice(0, at)] = line.slice(at + 2);
        }
        if (fields.id) lastId = fields.id;
        if (fields.retry) retry = Number(fields.retry);
        if (fields.data) ended = onEvent(JSON.parse(fields.data)) || ended;
      }
    });
    if (!ended) await new Promise(r => setTimeout(r, retry));
  }
}

function showProgress(card, batch) {
  const done = batch.counts.status.succeeded + batch.counts.status.failed;
  const bar = card.querySelector(".progress");
  bar.max = batch.total;
  bar.value = done;
  let text = done + " of " + batch.total + " done";
  if (batch.counts.status.failed) text += " · " + batch.counts.status.failed + " failed";
  if (batch.status === "running" && batch.eta_seconds !== null) {
    text += " · about " + Math.ceil(batch.eta_seconds) + " s left";
  }
  if (batch.status !== "running") text += " · " + batch.status;
  const summary = card.querySelector(".summary");
  summary.textContent = text;
  summary.classList.toggle("failed", batch.counts.status.failed > 0);
  card.dataset.status = batch.status;
  return batch.status !== "running";
}

function addRow(card, line) {
  const row = document.createElement("tr");
  row.dataset.index = line.index;
  const best = line.result ? line.result.predictions[0] : null;
  const cells = [String(line.index + 1), line.input, line.status,
                 best ? best.label : (line.error ? line.error.message + " (" + line.error.code + ")" : ""),
                 best ? (best.score * 100).toFixed(1) + "%" : ""];
  for (const [i, text] of cells.entries()) {
    const cell = document.createElement("td");
    cell.textContent = text;
    if (i === 2) cell.className = line.status === "failed" ? "status failed" : "status";
    row.append(cell);
  }
  card.querySelector("tbody").append(row);
}

async function followResults(card, id, total) {
  let rows = 0;
  while (rows < total) {
    let buffer = "";
    const before = rows;
    await readStream("/batches/" + id + "/results?after=" + rows, {}, text => {
      buffer += text;
      let cut;
      while ((cut = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 1);
        if (line) { addRow(card, JSON.parse(line)); rows += 1; }
      }
    });
    if (rows === before) await new Promise(r => setTimeout(r, 1000));
  }
}

async function submitBatch(files, name) {
  const card = batchTemplate.content.firstElementChild.cloneNode(true);
  card.querySelector(".name").textContent = name + " (" + files.length + " images)";
  batchesEl.prepend(card);
  const summary = card.querySelector(".summary");
  summary.textContent = "sending…";
  const form = new FormData();
  for (const file of files) form.append("image", file, file.webkitRelativePath || file.name);
  let response;
  try {
    response = await fetch("/batches", {method: "POST", body: form, headers: headers()});
  } catch (e) {
    summary.textContent = "the server could not be reached";
    summary.classList.add("failed");
    return;
  }
  const batch = await readJson(response);
  if (!response.ok) {
    summary.textContent = explain(batch, response);
    summary.classList.add("failed");
    card.dataset.status = "refused";
    return;
  }
  card.dataset.batchId = batch.id;
  showProgress(card, batch);
  try {
    await Promise.all([followEvents("/batches/" + batch.id + "/events", b => showProgress(card, b)),
                       followResults(card, batch.id, batch.total)]);
  } catch (e) {
    summary.textContent = String(e.message || e);
    summary.classList.add("failed");
  }
}

// Files of a dropped folder, read through its entries.
async function filesOf(entry) {
  if (entry.isFile) return [await new Promise((ok, fail) => entry.file(ok, fail))];
  const reader = entry.createReader();
  const found = [];
  for (;;) {
    const entries = await new Promise((ok, fail) => reader.readEntries(ok, fail));
    if (!entries.length) return found;
    for (const child of entries) found.push(...await filesOf(child));
  }
}

function submitMany(files, name) {
  const images = [...files].filter(isImage);
  if (images.length === 1) submitFile(images[0]);
  else if (images.length > 1) submitBatch(images, name);
}

document.getElementById("files").addEventListener("change", event => {
  submitMany(event.target.files, "batch");
  event.target.value = "";
});

document.getElementById("folder").addEventListener("change", event => {
  const files = [...event.target.files];
  const folder = files.length ? files[0].webkitRelativePath.split("/")[0] : "folder";
  if (files.length) submitBatch(files.filter(isImage), folder);
  event.target.value = "";
});

document.getElementById("url-form").addEventListener("submit", event => {
  event.preventDefault();
  const input = document.getElementById("url");
  if (input.value) submitUrl(input.value.trim());
  input.value = "";
});

const drop = document.getElementById("drop");
drop.addEventListener("dragover", event => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", async event => {
  event.preventDefault();
  drop.classList.remove("over");
  const entries = [...event.dataTransfer.items].map(item => item.webkitGetAsEntry && item.webkitGetAsEntry());
  if (entries.some(entry => entry && entry.isDirectory)) {
    const files = [];
    for (const entry of entries) if (entry) files.push(...await filesOf(entry));
    submitBatch(files.filter(isImage), entries.find(e => e && e.isDirectory).name);
  } else {
    submitMany(event.dataTransfer.files, "batch");
  }
});

document.addEventListener("paste", event => {
  for (const item of event.clipboardData.items) {
    if (item.kind === "file") submitFile(item.getAsFile());
    else if (item.type === "text/plain") item.getAsString(text => {
      if (/^https?:\/\//.test(text.trim())) submitUrl(text.trim());
    });
  }
});
