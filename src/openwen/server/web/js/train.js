// Train: make a derivative of a model from a JSONL file, from the answers you rated good or
// edited in your conversations, or from a document collection. Pick the base and the data, start,
// watch progress and the loss curve live, cancel, then chat with the result in one click.

import * as api from "./api.js";
import { newChat, render } from "./chat.js";
import { $, h } from "./dom.js";
import { formatDuration, formatNumber, t } from "./i18n.js";
import { loadLibrary } from "./models.js";
import { state } from "./state.js";

const API = "/api/tune";
const FINAL = ["done", "failed", "cancelled", "interrupted"];
let timer = null;
let selected = null;

async function openTrain() {
  $("#train-error").textContent = "";
  $("#train-dialog").showModal();
  try {
    const caps = await api.get(API);
    $("#train-form").hidden = !caps.allowed;
    $("#train-denied").hidden = caps.allowed;
    $("#train-denied").textContent = caps.reason || "";
    $("#train-base").replaceChildren(...caps.bases.map((b) => h("option", { value: b, text: b })));
    if (caps.allowed) await refresh();
  } catch (error) {
    $("#train-error").textContent = error.message;
  }
}

async function refresh() {
  const { jobs } = await api.get(`${API}/jobs`);
  $("#train-jobs").replaceChildren(...jobs.map(jobItem));
  $("#train-no-jobs").hidden = jobs.length > 0;
  if (!selected && jobs.length) selected = jobs[jobs.length - 1].name;
  const job = jobs.find((j) => j.name === selected);
  showJob(job || null);
  clearTimeout(timer);
  if (jobs.some((j) => !FINAL.includes(j.state)) && $("#train-dialog").open) {
    timer = setTimeout(() => refresh().catch(() => {}), 1000);
  }
}

function jobItem(job) {
  return h("li", {}, h("button.ghost", {
    type: "button", "data-job": job.name, "aria-current": job.name === selected ? "true" : "false",
    text: `${job.name} · ${stateText(job.state)}`, onclick: () => { selected = job.name; refresh(); },
  }));
}

function stateText(state) { return t(`train.state.${state}`); }

function progressText(job) {
  if (job.state === "running" && job.phase === "training") {
    return t("train.progress", {
      step: job.step, total: job.total_steps, loss: formatNumber(job.loss, { maximumFractionDigits: 3 }),
      speed: Math.round(job.tokens_per_s), eta: formatDuration(job.eta_s),
    });
  }
  if (job.error) return job.error;
  return job.phase ? t(`train.phase.${job.phase.replace(/ /g, "_")}`) : stateText(job.state);
}

function showJob(job) {
  const box = $("#train-job");
  box.hidden = !job;
  if (!job) return;
  $("#train-job-title").textContent = t("train.job_title", { name: job.name, base: job.base });
  $("#train-job-state").textContent = stateText(job.state);
  $("#train-job-state").dataset.state = job.state;
  $("#train-job-progress").textContent = progressText(job);
  const bar = $("#train-job-bar");
  bar.max = job.total_steps || 1;
  bar.value = job.state === "done" ? bar.max : job.step || 0;
  drawLoss($("#train-loss"), job.losses || []);
  $("#train-cancel").hidden = FINAL.includes(job.state);
  $("#train-chat").hidden = job.state !== "done";
  $("#train-merge").hidden = job.state !== "done" || Boolean(job.merged);
  $("#train-merged").hidden = !job.merged;
  $("#train-merged").textContent = job.merged ? t("train.merged", { name: job.merged.name }) : "";
  $("#train-eval").replaceChildren(...(job.eval ? evalView(job.eval) : []));
}

function num(value) {
  return value == null ? "–" : formatNumber(value, { minimumFractionDigits: 3, maximumFractionDigits: 3 });
}

function evalView(ev) {
  const row = (label, a, b) => h("tr", {}, h("th", { text: label }), h("td", { text: num(a) }),
    h("td", { text: num(b) }));
  const table = h("table.train-eval-table", {},
    h("tr", {}, h("th", { text: t("train.heldout", { count: ev.heldout_examples }) }),
      h("th", { text: t("train.col_base") }), h("th", { text: t("train.col_derivative") })),
    row(t("train.loss"), ev.base_loss, ev.derivative_loss),
    row(t("train.perplexity"), ev.base_perplexity, ev.derivative_perplexity));
  const line = (key, text) => h("p", {}, h("strong", { text: t(key) + " " }),
    document.createTextNode(text));
  const samples = (ev.samples || []).map((s) => h("div.train-sample", {},
    line("train.sample_prompt", s.prompt), line("train.sample_expected", s.expected),
    line("train.sample_base", s.base), line("train.sample_derivative", s.derivative)));
  return [table, ...samples];
}

function drawLoss(svg, losses) {
  const w = 320, hgt = 120, pad = 4;
  svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
  if (losses.length < 2) { svg.replaceChildren(); return; }
  const max = Math.max(...losses), min = Math.min(...losses), span = max - min || 1;
  const pts = losses.map((l, i) => {
    const x = pad + (i / (losses.length - 1)) * (w - 2 * pad);
    const y = pad + (1 - (l - min) / span) * (hgt - 2 * pad);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  }).join(" ");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", pts);
  line.setAttribute("class", "train-loss-line");
  svg.replaceChildren(line);
  svg.dataset.points = String(losses.length);
}

// The data: a JSONL file, the answers you rated or edited, or a document collection.
async function sourceChanged() {
  const source = $("#train-source").value;
  $("#train-file-field").hidden = source !== "file";
  $("#train-rated-field").hidden = source !== "conversations";
  $("#train-collection-field").hidden = source !== "documents";
  if (source !== "documents") return;
  try {
    const { collections } = await api.get("/api/knowledge/collections");
    $("#train-collection").replaceChildren(...collections.map((c) => h("option", { value: c.name, text: c.name })));
  } catch (error) {
    $("#train-error").textContent = error.message;
  }
}

async function dataOf(source) {
  if (source === "conversations") return { source, rated: $("#train-rated").value };
  if (source === "documents") {
    const collection = $("#train-collection").value;
    if (!collection) throw new Error(t("train.pick_collection"));
    return { source, collection };
  }
  const file = $("#train-file").files[0];
  if (!file) throw new Error(t("train.pick_file"));
  return { source, data: await file.text(), data_name: file.name };
}

async function start(event) {
  event.preventDefault();
  $("#train-error").textContent = "";
  let data;
  try {
    data = await dataOf($("#train-source").value);
  } catch (error) {
    $("#train-error").textContent = error.message;
    return;
  }
  const body = {
    name: $("#train-name").value.trim(), base: $("#train-base").value, ...data,
    epochs: Number($("#train-epochs").value) || 3,
  };
  try {
    const created = await api.post(`${API}/jobs`, body);
    selected = created.job.name;
    $("#train-warnings").textContent = created.warnings.join(" ");
    await refresh();
  } catch (error) {
    $("#train-error").textContent = error.message;
  }
}

async function cancel() {
  try {
    await api.post(`${API}/jobs/${encodeURIComponent(selected)}/cancel`);
    await refresh();
  } catch (error) {
    $("#train-error").textContent = error.message;
  }
}

async function mergeJob() {
  const button = $("#train-merge");
  button.disabled = true;
  $("#train-merged").hidden = false;
  $("#train-merged").textContent = t("train.merging");
  try {
    await api.post(`${API}/jobs/${encodeURIComponent(selected)}/merge`, {});
    await loadLibrary();  // the merged model joins the picker
    await refresh();
  } catch (error) {
    $("#train-merged").hidden = true;
    $("#train-error").textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

async function chatWith() {
  try {
    await loadLibrary();  // the new model joins the picker
  } catch (error) {
    $("#train-error").textContent = error.message;
    return;
  }
  $("#train-dialog").close();
  newChat();
  state.draftSettings = { ...state.draftSettings, model: selected };
  render();
}

export function setupTrain() {
  $("#train-button").addEventListener("click", openTrain);
  $("#train-form").addEventListener("submit", start);
  $("#train-source").addEventListener("change", sourceChanged);
  $("#train-cancel").addEventListener("click", cancel);
  $("#train-chat").addEventListener("click", chatWith);
  $("#train-merge").addEventListener("click", mergeJob);
  $("#train-dialog").addEventListener("close", () => clearTimeout(timer));
}
