// Start the page: find out who is signed in, then show the sign-in screen or the chat.

import * as api from "./api.js";
import { showAuth } from "./auth.js";
import {
  currentStream, ensureConversation, route, setupChat, newChat, stop,
} from "./chat.js";
import { applyTheme, openHelp, setupDialogs } from "./dialogs.js";
import { $, toast } from "./dom.js";
import { setupKnowledge } from "./knowledge.js";
import { setupMemory } from "./memory.js";
import { closeMenu, focusSearch, refreshList, setupSidebar } from "./sidebar.js";
import { state } from "./state.js";
import { setupTools } from "./tools.js";
import { browserLocale, locale, setLocale, t } from "./i18n.js";
import { loadLibrary, setupModels } from "./models.js";
import { setupTrain } from "./train.js";

function anyDialogOpen() {
  return Boolean(document.querySelector("dialog[open]"));
}

// Enter / Shift+Enter are handled by the composer; these work anywhere.
function onShortcut(event) {
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  if (mod && !event.shiftKey && key === "k") {
    event.preventDefault();
    focusSearch();
  } else if (mod && event.shiftKey && key === "o") {
    event.preventDefault();
    closeMenu();
    newChat();
  } else if (mod && (key === "/" || key === "?")) {
    event.preventDefault();
    openHelp();
  } else if (key === "escape" && currentStream() && !anyDialogOpen()) {
    event.preventDefault();
    stop();
  }
}

async function logout() {
  try {
    await api.post("/api/auth/logout");
  } catch (error) {
    toast(error.message, "error");
    return;
  }
  location.assign("/");
}

// An upstream that goes down (or comes back) shows in the model picker within this time.
const MODELS_REFRESH_MS = 15000;

function refreshModels() {
  setInterval(async () => {
    try { await loadLibrary(); } catch { /* offline: keep the last list */ }
  }, MODELS_REFRESH_MS);
}

async function loadPreferences() {
  try {
    state.preferences = (await api.get("/api/settings")).values;
  } catch { state.preferences = {}; }
  const theme = state.preferences["ui.theme"];
  if (theme) applyTheme(theme);
  const chosen = state.preferences["ui.locale"];
  if (chosen && chosen !== locale()) setLocale(chosen);
}

async function start() {
  setLocale(browserLocale());
  applyTheme(document.documentElement.dataset.theme || null);
  let session;
  try {
    session = await api.get("/api/session");
  } catch (error) {
    $("#loading").textContent = t("main.unreachable", { message: error.message });
    return;
  }
  state.session = session;
  api.setCsrf(session.csrf_token);
  $("#loading").hidden = true;
  state.user = session.user || await showAuth(session);
  $("#user-name").textContent = state.user.username;
  $("#admin-button").hidden = !state.user.is_admin;
  $("#logout-button").hidden = session.single_user;
  $("#app").hidden = false;
  setupSidebar();
  setupChat();
  setupDialogs();
  setupTools();
  setupKnowledge(ensureConversation);
  setupMemory();
  setupTrain();
  document.addEventListener("keydown", onShortcut);
  $("#logout-button").addEventListener("click", logout);
  await loadPreferences();
  await setupModels();
  route({ push: false });
  refreshList();
  refreshModels();
  document.body.dataset.ready = "true";
}

start();
