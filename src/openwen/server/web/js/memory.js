// Memory: what openwen remembers about the user. List, add, edit, delete, and the switches
// (memory on or off, automatic extraction from chats).

import * as api from "./api.js";
import { $, h, confirmDialog } from "./dom.js";
import { t } from "./i18n.js";

const KB = "/api/knowledge";
// where a memory came from: catalog keys memory.source_<source> (locales/*.js)
const SOURCES = new Set(["user", "chat", "tool", "extracted", "api"]);
const NOT_TYPED_SOURCES = new Set(["tool", "extracted"]);  // written by the model

async function openMemory() {
  $("#memory-error").textContent = "";
  $("#memory-dialog").showModal();
  await load();
}

async function load() {
  try {
    const [{ memories }, settings] = await Promise.all([
      api.get(`${KB}/memories`), api.get(`${KB}/memory/settings`)]);
    $("#memory-enabled").checked = settings.enabled;
    $("#memory-auto").checked = settings.auto_extract;
    $("#memory-auto").disabled = !settings.enabled;
    $("#memory-list").replaceChildren(...memories.map(item));
    $("#memory-empty").hidden = memories.length > 0;
  } catch (error) {
    $("#memory-error").textContent = error.message;
  }
}

function item(memory) {
  const text = h("span.memory-text", { text: memory.text });
  const byModel = NOT_TYPED_SOURCES.has(memory.source);
  const source = h(`span.muted.memory-source${byModel ? ".by-model" : ""}`, {
    text: SOURCES.has(memory.source) ? t(`memory.source_${memory.source}`) : memory.source,
    title: byModel ? t("memory.not_typed") : undefined,
    "data-source": memory.source });
  const li = h("li.memory", { "data-id": memory.id }, h("div.memory-body", {}, text, source));
  const actions = h("div.memory-actions", {},
    h("button.ghost", { type: "button", text: t("memory.edit"), "aria-label": t("memory.edit_name", { text: memory.text }),
      onclick: () => edit(li, memory) }),
    h("button.ghost", { type: "button", text: t("common.delete"), "aria-label": t("memory.delete_name", { text: memory.text }),
      onclick: async () => {
        if (!(await confirmDialog(t("memory.confirm_forget", { text: memory.text }), t("memory.forget")))) return;
        await act(() => api.del(`${KB}/memories/${memory.id}`));
      } }));
  li.append(actions);
  return li;
}

function edit(li, memory) {
  const input = h("input", { "aria-label": t("memory.text"), maxlength: 1000 });
  input.value = memory.text;
  const save = () => act(() => api.patch(`${KB}/memories/${memory.id}`, { text: input.value }));
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); save(); }
    if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); load(); }
  });
  li.replaceChildren(h("form.inline-form", { onsubmit: (event) => { event.preventDefault(); save(); } },
    input, h("button.secondary", { type: "submit", text: t("common.save") }),
    h("button.ghost", { type: "button", text: t("common.cancel"), onclick: () => load() })));
  input.focus();
}

async function act(fn) {
  $("#memory-error").textContent = "";
  try {
    await fn();
  } catch (error) {
    $("#memory-error").textContent = error.message;
    return;
  }
  await load();
}

async function add(event) {
  event.preventDefault();
  const text = $("#memory-text").value.trim();
  if (!text) return;
  await act(async () => {
    await api.post(`${KB}/memories`, { text });
    $("#memory-text").value = "";
  });
}

async function setSwitches() {
  await act(() => api.put(`${KB}/memory/settings`, {
    enabled: $("#memory-enabled").checked, auto_extract: $("#memory-auto").checked }));
}

export function setupMemory() {
  $("#memory-button").addEventListener("click", openMemory);
  $("#memory-form").addEventListener("submit", add);
  $("#memory-enabled").addEventListener("change", setSwitches);
  $("#memory-auto").addEventListener("change", setSwitches);
}
