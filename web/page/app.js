// resq's page: each picked, dropped or pasted image becomes a job; the card shows its
// status live (long-polling GET /jobs/<id>?wait=) and then its top-5 as bars.
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

document.getElementById("files").addEventListener("change", event => {
  for (const file of event.target.files) submitFile(file);
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
drop.addEventListener("drop", event => {
  event.preventDefault();
  drop.classList.remove("over");
  for (const file of event.dataTransfer.files) submitFile(file);
});

document.addEventListener("paste", event => {
  for (const item of event.clipboardData.items) {
    if (item.kind === "file") submitFile(item.getAsFile());
    else if (item.type === "text/plain") item.getAsString(text => {
      if (/^https?:\/\//.test(text.trim())) submitUrl(text.trim());
    });
  }
});
