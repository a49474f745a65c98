// Dialogs: account (password, API keys), users (admin), keyboard shortcuts; the theme toggle.

import * as api from "./api.js";
import { $, h, toast, confirmDialog, closeOnCancel } from "./dom.js";
import { state } from "./state.js";
import { LOCALES, locale, setLocale, t } from "./i18n.js";

// -- theme -------------------------------------------------------------------------------------

const systemDark = () => window.matchMedia("(prefers-color-scheme: dark)").matches;

export function isDark() {
  const chosen = document.documentElement.dataset.theme;
  return chosen ? chosen === "dark" : systemDark();
}

export function applyTheme(theme) {
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  try {
    if (theme) localStorage.setItem("openwen.theme", theme);
    else localStorage.removeItem("openwen.theme");
  } catch { /* storage blocked */ }
  const toggle = $("#theme-toggle");
  toggle.setAttribute("aria-pressed", String(isDark()));
}

async function toggleTheme() {
  const theme = isDark() ? "light" : "dark";
  applyTheme(theme);
  try { await api.put("/api/settings", { values: { "ui.theme": theme } }); } catch { /* offline */ }
}

// -- account -----------------------------------------------------------------------------------

function renderLanguages() {
  const picker = $("#language-picker");
  picker.replaceChildren(...LOCALES.map((l) => h("option", { value: l.id, text: l.name })));
  picker.value = locale();
}

// The language: remembered per user (ui.locale); without a choice, the browser's.
async function chooseLanguage(event) {
  const id = event.target.value;
  setLocale(id);
  state.preferences["ui.locale"] = id;
  try { await api.put("/api/settings", { values: { "ui.locale": id } }); } catch (error) {
    toast(error.message, "error");
  }
}

async function openAccount() {
  renderLanguages();
  $("#api-base").textContent = `${location.origin}/v1`;
  $("#key-secret").hidden = true;
  $("#password-form").hidden = state.session.single_user;
  $("#account-dialog").showModal();
  await loadKeys();
}

async function loadKeys() {
  try {
    const { keys } = await api.get("/api/keys");
    $("#key-list").replaceChildren(...keys.map(keyItem));
    if (!keys.length) $("#key-list").append(h("li.muted", { text: t("account.no_keys") }));
  } catch (error) {
    toast(error.message, "error");
  }
}

function keyItem(key) {
  const label = t(key.revoked_at ? "account.key_revoked" : "account.key", { name: key.name, prefix: key.prefix });
  return h("li", {}, h("span", { text: label }), key.revoked_at ? null :
    h("button.ghost", { type: "button", text: t("account.revoke"), "aria-label": t("account.revoke_key", { name: key.name }),
      onclick: async () => {
        if (!(await confirmDialog(t("account.confirm_revoke", { name: key.name }), t("account.revoke")))) return;
        await api.del(`/api/keys/${key.id}`).catch((e) => toast(e.message, "error"));
        loadKeys();
      } }));
}

async function createKey(event) {
  event.preventDefault();
  try {
    const data = await api.post("/api/keys", { name: $("#key-name").value });
    $("#key-name").value = "";
    const secret = $("#key-secret");
    secret.hidden = false;
    secret.textContent = t("account.secret", { secret: data.secret });
    loadKeys();
  } catch (error) {
    toast(error.message, "error");
  }
}

async function changePassword(event) {
  event.preventDefault();
  $("#password-error").textContent = "";
  try {
    const data = await api.post("/api/auth/password", {
      current_password: $("#pw-current").value, new_password: $("#pw-new").value });
    if (data.csrf_token) api.setCsrf(data.csrf_token);
    $("#pw-current").value = "";
    $("#pw-new").value = "";
    toast(t("account.password_changed"));
  } catch (error) {
    $("#password-error").textContent = error.message;
  }
}

// -- users (admin) -----------------------------------------------------------------------------

async function openAdmin() {
  $("#admin-error").textContent = "";
  $("#admin-dialog").showModal();
  await loadUsers();
}

async function loadUsers() {
  try {
    const [{ users }, registration] = await Promise.all([
      api.get("/api/admin/users"), api.get("/api/admin/registration")]);
    $("#open-registration").checked = registration.open;
    $("#user-rows").replaceChildren(...users.map(userRow));
  } catch (error) {
    $("#admin-error").textContent = error.message;
  }
}

function userRow(user) {
  const me = user.id === state.user.id;
  const act = (label, fn, aria) => h("button.ghost", { type: "button", text: label, "aria-label": aria,
    onclick: async () => {
      try { await fn(); } catch (error) { $("#admin-error").textContent = error.message; }
      loadUsers();
    } });
  return h("tr", {},
    h("td", { text: me ? t("users.you", { name: user.username }) : user.username }),
    h("td", { text: user.is_admin ? t("users.admin") : t("users.user") }),
    h("td", { text: user.disabled ? t("users.disabled") : t("users.active") }),
    h("td", {}, me ? null : [
      act(user.disabled ? t("users.enable") : t("users.disable"),
        () => api.patch(`/api/admin/users/${user.id}`, { disabled: !user.disabled }),
        t(user.disabled ? "users.enable_name" : "users.disable_name", { name: user.username })),
      act(t("users.remove"), async () => {
        if (await confirmDialog(t("users.confirm_remove", { name: user.username }), t("users.remove"))) {
          await api.del(`/api/admin/users/${user.id}`);
        }
      }, t("users.remove_name", { name: user.username })),
    ]));
}

async function addUser(event) {
  event.preventDefault();
  $("#admin-error").textContent = "";
  try {
    await api.post("/api/admin/users", { username: $("#new-username").value,
      password: $("#new-password").value, is_admin: $("#new-admin").checked });
    $("#new-username").value = "";
    $("#new-password").value = "";
    $("#new-admin").checked = false;
    loadUsers();
  } catch (error) {
    $("#admin-error").textContent = error.message;
  }
}

async function setRegistration(event) {
  try {
    await api.put("/api/admin/registration", { open: event.target.checked });
  } catch (error) {
    $("#admin-error").textContent = error.message;
    event.target.checked = !event.target.checked;
  }
}

export function openHelp() {
  const dialog = $("#help-dialog");
  if (!dialog.open) dialog.showModal();
}

export function setupDialogs() {
  $("#theme-toggle").addEventListener("click", toggleTheme);
  $("#help-button").addEventListener("click", openHelp);
  $("#account-button").addEventListener("click", openAccount);
  $("#admin-button").addEventListener("click", openAdmin);
  $("#key-form").addEventListener("submit", createKey);
  $("#password-form").addEventListener("submit", changePassword);
  $("#add-user-form").addEventListener("submit", addUser);
  $("#open-registration").addEventListener("change", setRegistration);
  $("#language-picker").addEventListener("change", chooseLanguage);
  closeOnCancel($("#settings-dialog"));
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => applyTheme(
    document.documentElement.dataset.theme || null));
}
