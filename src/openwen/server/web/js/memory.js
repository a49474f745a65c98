// Memory: what openwen remembers about the user. List, add, edit, delete, and the switches
// (memory on or off, automatic extraction from chats).

import * as api from "./api.js";
import { $, h, confirmDialog } from "./dom.js";
import { t } from "./i18n.js";

const KB = "/api/knowledge";
const SOURCES = { user: "added by you", chat: "from a chat", tool: "saved by the assistant",
  extracted: "extracted automatically", api: "added through the API" };

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
  const li = h("li.memory", { "data-id": memory.id }, h("div.memory-body", {}, text,
    h("span.muted.memory-source", { text: SOURCES[memory.source] || memory.source })));
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
