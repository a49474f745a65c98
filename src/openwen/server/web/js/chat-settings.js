// The open conversation's settings: the model picker and thinking switch in the header (shown
// only for a model that can think), and the settings dialog (system prompt, sampling, tools,
// collection), whose empty fields show the model's profile defaults.

import * as api from "./api.js";
import { currentStream } from "./chat.js";
import { $, h, toast } from "./dom.js";
import { t } from "./i18n.js";
import { collectionNames } from "./knowledge.js";
import { modelInfo } from "./models.js";
import { state, on, currentSettings } from "./state.js";

export function renderControls() {
  const busy = Boolean(currentStream());
  $("#send").hidden = busy;
  $("#stop").hidden = !busy;
  $("#messages").setAttribute("aria-busy", String(busy));
  const settings = currentSettings();
  const picker = $("#model-picker");
  const names = state.models.map((m) => m.id);
  const down = new Set(state.models.filter((m) => m.available === false).map((m) => m.id));
  const wanted = settings.model || state.defaultModel;
  if (wanted && !names.includes(wanted)) names.push(wanted);
  picker.replaceChildren(...names.map((name) => h("option", {
    value: name, text: down.has(name) ? t("chat.unavailable", { name }) : name,
    "data-unavailable": down.has(name) ? "true" : undefined,
  })));
  picker.value = wanted || "";
  // the thinking switch only for a model that can think; unset, it shows the profile's default
  const { capabilities, profile } = modelDefaults(wanted);
  $("#thinking-switch").hidden = Boolean(capabilities) && !capabilities.thinking;
  $("#thinking-toggle").checked = settings.thinking ?? profile.thinking !== false;
}

// The picked model's capabilities (null: unknown) and profile defaults.
function modelDefaults(name) {
  const info = modelInfo(name);
  return { capabilities: (info && info.capabilities) || null, profile: (info && info.profile) || {} };
}

// -- settings ----------------------------------------------------------------------------------

export async function updateSettings(change) {
  const merged = { ...currentSettings(), ...change };
  for (const key of Object.keys(merged)) if (merged[key] === null || merged[key] === "") delete merged[key];
  if (!state.conversation) {
    state.draftSettings = merged;
    renderControls();
    return;
  }
  try {
    const data = await api.patch(`/api/conversations/${state.conversation.id}`, { settings: merged });
    state.conversation = data.conversation;
  } catch (error) {
    toast(error.message, "error");
  }
  renderControls();
}

export async function openSettingsDialog() {
  const dialog = $("#settings-dialog");
  const settings = currentSettings();
  $("#set-system").value = (state.conversation ? state.conversation.system_prompt : state.draftSystemPrompt) || "";
  $("#set-temperature").value = settings.temperature ?? "";
  $("#set-top-p").value = settings.top_p ?? "";
  $("#set-max-tokens").value = settings.max_tokens ?? "";
  const { profile } = modelDefaults(settings.model || state.defaultModel);
  const sampling = profile.sampling || {};
  $("#set-system").placeholder = profile.system || t("ui.you_are_a_helpful_assistant");
  $("#set-temperature").placeholder = sampling.temperature ?? t("ui.default");
  $("#set-top-p").placeholder = sampling.top_p ?? t("ui.default");
  $("#set-tools").checked = settings.tools ?? profile.tools !== false;
  $("#settings-error").textContent = "";
  const picker = $("#set-collection");
  picker.replaceChildren(h("option", { value: "", text: t("chat.no_collection") }));
  picker.value = "";
  dialog.showModal();
  const names = await collectionNames();
  if (settings.collection && !names.includes(settings.collection)) names.push(settings.collection);
  picker.append(...names.map((name) => h("option", { value: name, text: name })));
  picker.value = settings.collection || "";
}

// Tools as stored: null when the switch says what the model's profile says.
function toolsSetting(checked) {
  const { profile } = modelDefaults(currentSettings().model || state.defaultModel);
  return checked === (profile.tools !== false) ? null : checked;
}

async function saveSettingsDialog(event) {
  event.preventDefault();
  const number = (id) => ($(id).value === "" ? null : Number($(id).value));
  const settings = { ...currentSettings(), temperature: number("#set-temperature"),
    top_p: number("#set-top-p"), max_tokens: number("#set-max-tokens"),
    tools: toolsSetting($("#set-tools").checked), collection: $("#set-collection").value || null };
  for (const key of Object.keys(settings)) if (settings[key] === null) delete settings[key];
  const systemPrompt = $("#set-system").value.trim() ? $("#set-system").value : null;
  if (!state.conversation) {
    state.draftSettings = settings;
    state.draftSystemPrompt = systemPrompt;
    $("#settings-dialog").close();
    return;
  }
  try {
    const data = await api.patch(`/api/conversations/${state.conversation.id}`,
      { settings, system_prompt: systemPrompt });
    state.conversation = data.conversation;
    $("#settings-dialog").close();
    renderControls();
  } catch (error) {
    $("#settings-error").textContent = error.message;
  }
}

export function setupSettings() {
  $("#model-picker").addEventListener("change", (event) => updateSettings({ model: event.target.value }));
  $("#thinking-toggle").addEventListener("change", (event) => updateSettings({ thinking: event.target.checked }));
  $("#chat-settings").addEventListener("click", openSettingsDialog);
  $("#settings-form").addEventListener("submit", saveSettingsDialog);
  on("models-changed", renderControls);
}
