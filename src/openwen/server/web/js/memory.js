// Memory: what openwen remembers about the user. List, add, edit, delete, and the switches
// (memory on or off, automatic extraction from chats).

import * as api from "./api.js";
import { $, h, confirmDialog } from "./dom.js";

const KB = "/api/knowledge";
// user-facing strings of this dialog, together for the string catalog
const SOURCES = { user: "added by you", chat: "from a chat", tool: "saved by the assistant",
  extracted: "extracted automatically", api: "added through the API" };
const NOT_TYPED = "You did not type this one: check that it is true and that you want it kept.";
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
    text: SOURCES[memory.source] || memory.source, title: byModel ? NOT_TYPED : undefined,
    "data-source": memory.source });
  const li = h("li.memory", { "data-id": memory.id }, h("div.memory-body", {}, text, source));
  const actions = h("div.memory-actions", {},
    h("button.ghost", { type: "button", text: "Edit", "aria-label": `Edit memory: ${memory.text}`,
      onclick: () => edit(li, memory) }),
    h("button.ghost", { type: "button", text: "Delete", "aria-label": `Delete memory: ${memory.text}`,
      onclick: async () => {
        if (!(await confirmDialog(`Forget “${memory.text}”?`, "Forget"))) return;
        await act(() => api.del(`${KB}/memories/${memory.id}`));
      } }));
  li.append(actions);
  return li;
}

function edit(li, memory) {
  const input = h("input", { "aria-label": "Memory text", maxlength: 1000 });
  input.value = memory.text;
  const save = () => act(() => api.patch(`${KB}/memories/${memory.id}`, { text: input.value }));
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); save(); }
    if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); load(); }
  });
  li.replaceChildren(h("form.inline-form", { onsubmit: (event) => { event.preventDefault(); save(); } },
    input, h("button.secondary", { type: "submit", text: "Save" }),
    h("button.ghost", { type: "button", text: "Cancel", onclick: () => load() })));
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
