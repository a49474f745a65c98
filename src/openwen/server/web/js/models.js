// The model library (Models… in the sidebar) and the first-run notice: installed models with
// their capabilities, profile and the chats using them; the catalog (Qwen first) against this
// machine's free memory; background downloads on the server with live progress; remove,
// set-as-default, profile edits and named derivatives. Downloads run on the server, so a
// reloaded page finds them where they were: this module only polls their state.

import * as api from "./api.js";
import { $, h, toast, confirmDialog, closeOnCancel } from "./dom.js";
import { formatBytes, formatDuration, formatNumber, t } from "./i18n.js";
import { state, emit } from "./state.js";

let library = null;   // GET /api/models
let catalog = null;   // GET /api/models/catalog
let downloads = [];   // GET /api/models/downloads
let pollTimer = null;
let editing = null;   // the model whose profile form is open

export function modelInfo(name) {
  return state.models.find((m) => m.id === name) || null;
}

// -- loading --------------------------------------------------------------------------------------

export async function loadLibrary() {
  library = await api.get("/api/models");
  state.models = library.models;
  state.defaultModel = library.default;
  state.library = library;
  emit("models-changed");
  return library;
}

async function loadDownloads() {
  downloads = (await api.get("/api/models/downloads")).downloads;
  return downloads;
}

const active = (job) => ["queued", "running", "verifying"].includes(job.state);

function schedulePoll() {
  if (pollTimer) return;
  pollTimer = setTimeout(async () => {
    pollTimer = null;
    const before = downloads.filter(active).map((j) => j.id);
    try { await loadDownloads(); } catch { return; }
    const finished = downloads.filter((j) => before.includes(j.id) && !active(j));
    if (finished.length) {
      for (const job of finished) {
        if (job.state === "done") toast(t("models.downloaded", { name: job.model || job.spec }));
      }
      await afterFirstDownload();
      await refresh();
    } else {
      renderDownloads();
      renderFirstRun();
    }
    if (downloads.some(active)) schedulePoll();
  }, 700);
}

async function refresh() {
  try {
    await Promise.all([loadLibrary(), loadDownloads()]);
    if ($("#models-dialog").open) catalog = await api.get("/api/models/catalog");
  } catch (error) {
    toast(error.message, "error");
    return;
  }
  renderAll();
  if (downloads.some(active)) schedulePoll();
}

function renderAll() {
  if ($("#models-dialog").open) {
    renderMemory();
    renderInstalled();
    renderCatalog();
    renderDerive();
  }
  renderDownloads();
  renderFirstRun();
}

// -- actions ----------------------------------------------------------------------------------------

function errorText(error) {
  if (error.code === "admin_only") return t("models.error_admin_only");
  return error.message;
}

export async function startDownload(spec) {
  try {
    await api.post("/api/models/downloads", { spec });
  } catch (error) {
    toast(errorText(error), "error");
    return;
  }
  await loadDownloads();
  renderDownloads();
  renderFirstRun();
  schedulePoll();
}

async function cancelDownload(job) {
  try {
    await api.post(`/api/models/downloads/${job.id}/cancel`);
  } catch (error) { toast(errorText(error), "error"); }
  await refresh();
}

async function dismissDownload(job) {
  try { await api.del(`/api/models/downloads/${job.id}`); } catch { /* gone */ }
  await refresh();
}

async function setDefault(model) {
  try {
    const { default: name } = await api.post("/api/models/default", { model: model.id });
    state.preferences["ui.default_model"] = name;
    toast(t("models.now_default", { name }));
  } catch (error) { toast(errorText(error), "error"); }
  renderInstalled();
}

async function removeModel(model) {
  if (!(await confirmDialog(t("models.confirm_remove", { name: model.id }), t("models.remove")))) return;
  try {
    await api.post("/api/models/remove", { model: model.id });
    toast(t("models.removed", { name: model.id }));
  } catch (error) { toast(errorText(error), "error"); }
  await refresh();
}

// -- the dialog -------------------------------------------------------------------------------------

export async function openModels() {
  $("#models-error").textContent = "";
  $("#profile-form").hidden = true;
  $("#models-dialog").showModal();
  await refresh();
}

function renderMemory() {
  const free = catalog ? catalog.memory_free : null;
  const total = catalog ? catalog.memory_total : null;
  $("#models-memory").textContent = free === null ? "" :
    t("models.memory", { free: formatBytes(free), total: formatBytes(total) });
  const admin = library && library.is_admin;
  $("#models-policy-row").hidden = !admin;
  $("#models-policy").checked = Boolean(library && library.users_may_pull);
  $("#models-readonly").hidden = Boolean(library && library.can_change);
}

function capabilityChips(model) {
  const caps = model.capabilities || {};
  const chips = [];
  if (caps.tools) chips.push(h("span.badge", { text: t("models.cap_tools") }));
  if (caps.thinking) chips.push(h("span.badge", { text: t("models.cap_thinking") }));
  if (!chips.length) chips.push(h("span.muted", { text: t("models.cap_chat_only") }));
  return chips;
}

function details(model) {
  const parts = [model.parameters, model.quantization, model.architecture].filter(Boolean);
  if (model.context_length) parts.push(t("models.context", { n: formatNumber(model.context_length) }));
  const lineage = model.base ? t("models.made_from", { base: model.base }) : model.lineage;
  return h("div", {}, h("div", { text: parts.join(" · ") }),
    lineage ? h("div.muted", { text: lineage }) : null,
    model.problem ? h("div.form-error", { text: model.problem }) : null);
}

function installedRow(model) {
  const isDefault = model.id === (state.preferences["ui.default_model"] || library.default);
  const name = h("td", {}, h("strong", { text: model.id }),
    isDefault ? h("span.badge", { text: t("models.default_badge") }) : null,
    model.bundled ? h("span.badge", { text: t("models.demo_badge") }) : null,
    model.profile && model.profile.description ? h("div.muted", { text: model.profile.description }) : null);
  const canChange = library.can_change && !model.bundled && model.engine === "embedded";
  return h("tr", { "data-model": model.id },
    name,
    h("td", { text: model.size ? formatBytes(model.size) : "" }),
    h("td", {}, details(model)),
    h("td", {}, ...capabilityChips(model)),
    h("td", { text: formatNumber(model.chats || 0) }),
    h("td.actions-cell", {},
      isDefault ? null : h("button.ghost", { type: "button", text: t("models.set_default"),
        "aria-label": t("models.set_default_name", { name: model.id }), onclick: () => setDefault(model) }),
      h("button.ghost", { type: "button", text: t("models.defaults"),
        "aria-label": t("models.defaults_name", { name: model.id }), onclick: () => openProfile(model) }),
      canChange ? h("button.ghost.danger-text", { type: "button", text: t("models.remove"),
        "aria-label": t("models.remove_name", { name: model.id }), onclick: () => removeModel(model) }) : null));
}

function renderInstalled() {
  if (!library) return;
  $("#installed-rows").replaceChildren(...library.models.map(installedRow));
}

function memoryCell(entry) {
  if (!entry.memory_needed) return h("td", { text: "" });
  const needed = formatBytes(entry.memory_needed);
  if (entry.fits === false) {
    return h("td", {}, h("span", { text: needed }), " ",
      h("span.badge.error", { text: t("models.too_big") }));
  }
  return h("td", {}, h("span", { text: needed }), " ",
    entry.fits ? h("span.badge", { text: t("models.fits") }) : null);
}

function catalogRow(entry) {
  const job = downloads.find((j) => j.spec === entry.name && active(j));
  const recommended = catalog.recommended === entry.name;
  let action;
  if (entry.installed) action = h("span.muted", { text: t("models.installed_badge") });
  else if (job) action = h("span.muted", { text: t("models.downloading") });
  else if (library.can_change) {
    action = h("button.secondary", { type: "button", text: t("models.download"),
      "aria-label": t("models.download_name", { name: entry.name }), onclick: () => startDownload(entry.name) });
  } else action = null;
  return h("tr", { "data-catalog": entry.name },
    h("td", {}, h("strong", { text: entry.name }),
      recommended ? h("span.badge", { text: t("models.recommended") }) : null,
      h("div.muted", { text: entry.description })),
    h("td", { text: entry.size ? formatBytes(entry.size) : t("models.size_unknown") }),
    memoryCell(entry),
    h("td", {}, action));
}

function renderCatalog() {
  if (!catalog) return;
  $("#catalog-rows").replaceChildren(...catalog.models.map(catalogRow));
}

function downloadError(job) {
  const known = ["no_network", "not_found", "disk_full", "corrupt", "forbidden", "busy", "interrupted"];
  const key = known.includes(job.error_code) ? `models.error_${job.error_code}` : "models.error_failed";
  return t(key, { name: job.spec });
}

function progressText(job) {
  if (job.state === "verifying") return t("models.verifying");
  if (job.state === "queued") return t("models.queued");
  const done = formatBytes(job.completed);
  if (!job.total) return job.completed ? done : t("models.queued");
  const parts = [t("models.progress", { done, total: formatBytes(job.total) })];
  if (job.speed) parts.push(t("models.speed", { speed: formatBytes(job.speed) }));
  if (job.eta !== null && job.eta !== undefined) parts.push(t("models.eta", { eta: formatDuration(job.eta) }));
  return parts.join(" · ");
}

function downloadItem(job) {
  const li = h("li.download", { "data-download": job.spec, "data-state": job.state });
  li.append(h("strong", { text: job.spec }));
  if (active(job)) {
    li.append(h("progress", { max: job.total || 1, value: job.total ? job.completed : 0,
      "aria-label": t("models.downloading_name", { name: job.spec }) }),
    h("span.muted.download-progress", { text: progressText(job) }),
    h("button.ghost", { type: "button", text: t("common.cancel"), onclick: () => cancelDownload(job) }));
  } else if (job.state === "done") {
    li.append(h("span", { text: t("models.done", { name: job.model || job.spec }) }),
      h("button.ghost", { type: "button", text: t("models.dismiss"), onclick: () => dismissDownload(job) }));
  } else {
    const message = job.state === "cancelled" ? t("models.cancelled") : downloadError(job);
    li.append(h(job.state === "error" ? "span.form-error" : "span.muted", { text: message, title: job.error || "" }),
      h("button.secondary", { type: "button", text: t("models.resume"), onclick: () => startDownload(job.spec) }),
      h("button.ghost", { type: "button", text: t("models.dismiss"), onclick: () => dismissDownload(job) }));
  }
  return li;
}

function renderDownloads() {
  $("#downloads-section").hidden = downloads.length === 0;
  $("#download-list").replaceChildren(...downloads.map(downloadItem));
}

// -- profiles and derivatives -------------------------------------------------------------------------

function openProfile(model) {
  editing = model;
  const p = model.profile || {};
  const s = p.sampling || {};
  $("#profile-title").textContent = t("models.profile_title", { name: model.id });
  const scope = $("#profile-scope");
  scope.replaceChildren(h("option", { value: "user", text: t("models.scope_user") }),
    library.is_admin ? h("option", { value: "server", text: t("models.scope_server") }) : null);
  $("#profile-system").value = p.system || "";
  $("#profile-temperature").value = s.temperature ?? "";
  $("#profile-top-p").value = s.top_p ?? "";
  $("#profile-tools").replaceChildren(
    h("option", { value: "on", text: t("models.on") }), h("option", { value: "off", text: t("models.off") }));
  $("#profile-tools").value = p.tools === false ? "off" : "on";
  $("#profile-error").textContent = "";
  $("#profile-form").hidden = false;
  $("#profile-system").focus();
}

async function saveProfile(event) {
  event.preventDefault();
  if (!editing) return;
  const number = (id) => ($(id).value === "" ? null : Number($(id).value));
  const body = { model: editing.id, scope: $("#profile-scope").value,
    system: $("#profile-system").value.trim() || null, temperature: number("#profile-temperature"),
    top_p: number("#profile-top-p"), tools: $("#profile-tools").value === "on" };
  try {
    await api.put("/api/models/profile", body);
    $("#profile-form").hidden = true;
    toast(t("models.profile_saved", { name: editing.id }));
    editing = null;
    await refresh();
  } catch (error) {
    $("#profile-error").textContent = errorText(error);
  }
}

function renderDerive() {
  const select = $("#derive-base");
  const keep = select.value;
  select.replaceChildren(...library.models.filter((m) => m.engine === "embedded")
    .map((m) => h("option", { value: m.id, text: m.id })));
  if (keep) select.value = keep;
  $("#derive-form").hidden = !library.can_change;
}

async function derive(event) {
  event.preventDefault();
  const temperature = $("#derive-temperature").value;
  try {
    const { model } = await api.post("/api/models/derive", { name: $("#derive-name").value.trim(),
      base: $("#derive-base").value, system: $("#derive-system").value.trim() || null,
      temperature: temperature === "" ? null : Number(temperature) });
    toast(t("models.derived", { name: model.id, base: model.base }));
    $("#derive-form").reset();
    await refresh();
  } catch (error) {
    $("#models-error").textContent = errorText(error);
  }
}

async function setPolicy(event) {
  try {
    await api.put("/api/models/policy", { users_may_pull: event.target.checked });
  } catch (error) {
    event.target.checked = !event.target.checked;
    toast(errorText(error), "error");
  }
  await refresh();
}

// -- the first-run notice -------------------------------------------------------------------------------

function renderFirstRun() {
  const box = $("#first-run");
  const info = library && library.first_run;
  const chosen = state.preferences["ui.first_run_pick"];
  const job = chosen ? downloads.find((j) => j.spec === chosen) : null;
  if (!info || state.preferences["ui.first_run_dismissed"] || (!info.only_demo && !job)) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const get = $("#first-run-get");
  const progress = $("#first-run-progress");
  if (job && job.state === "done") {  // the offered model is here
    $("#first-run-text").textContent = t("firstrun.ready", { model: job.model || job.spec });
    get.hidden = true;
    progress.hidden = true;
    return;
  }
  const pick = info.recommended || chosen;
  $("#first-run-text").textContent = pick ? t("firstrun.text", { model: pick }) : t("firstrun.text_small");
  get.hidden = !pick || !library.can_change || Boolean(job && active(job));
  get.textContent = t(job ? "firstrun.retry" : "firstrun.get", { model: pick || "" });
  progress.hidden = !job;
  if (job) {
    progress.textContent = active(job) ? progressText(job)
      : job.state === "cancelled" ? t("models.cancelled") : downloadError(job);
  }
  if (!library.can_change) {
    progress.hidden = false;
    progress.textContent = t("firstrun.ask_admin");
  }
}

async function remember(key, value) {
  state.preferences[key] = value;
  try { await api.put("/api/settings", { values: { [key]: value } }); } catch { /* offline */ }
}

async function dismissFirstRun() {
  state.preferences["ui.first_run_dismissed"] = true;
  renderFirstRun();
  await remember("ui.first_run_dismissed", true);
}

async function afterFirstDownload() {
  // the model the notice offered is here: make it the default for new chats
  const chosen = state.preferences["ui.first_run_pick"];
  const job = chosen && downloads.find((j) => j.spec === chosen && j.state === "done");
  if (job && job.model && !state.preferences["ui.default_model"]) {
    try {
      await api.post("/api/models/default", { model: job.model });
      state.preferences["ui.default_model"] = job.model;
    } catch { /* keep the server default */ }
  }
}

export async function setupModels() {
  $("#models-button").addEventListener("click", openModels);
  $("#first-run-models").addEventListener("click", openModels);
  $("#first-run-dismiss").addEventListener("click", dismissFirstRun);
  $("#first-run-get").addEventListener("click", async () => {
    const info = library && library.first_run;
    const pick = (info && info.recommended) || state.preferences["ui.first_run_pick"];
    if (!pick) return;
    await remember("ui.first_run_pick", pick);
    startDownload(pick);
  });
  $("#profile-form").addEventListener("submit", saveProfile);
  $("#profile-cancel").addEventListener("click", () => { $("#profile-form").hidden = true; editing = null; });
  $("#derive-form").addEventListener("submit", derive);
  $("#models-policy").addEventListener("change", setPolicy);
  closeOnCancel($("#models-dialog"));
  document.addEventListener("localechange", renderAll);
  try {
    await Promise.all([loadLibrary(), loadDownloads()]);
    await afterFirstDownload();  // it may have finished while no page was open
  } catch (error) {
    toast(t("main.models_failed", { message: error.message }), "error");
  }
  renderAll();
  if (downloads.some(active)) schedulePoll();
}

