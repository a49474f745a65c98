// The sign-in screen: sign up (first user, or when registration is open) and log in.

import * as api from "./api.js";
import { $ } from "./dom.js";
import { t } from "./i18n.js";

let mode = "login";

function setMode(next, session) {
  mode = next;
  const signup = mode === "signup";
  $("#auth-submit").textContent = signup ? t("auth.create_account") : t("auth.sign_in");
  $("#auth-password").autocomplete = signup ? "new-password" : "current-password";
  $("#auth-intro").textContent = session.first_user
    ? t("auth.welcome_first")
    : signup ? t("auth.create_yours") : t("auth.sign_in_intro");
  const canSwitch = session.signup_open && !session.first_user;
  $("#auth-switch").hidden = !canSwitch;
  $("#auth-switch").textContent = signup ? t("auth.have_account") : t("auth.new_here");
  $("#auth-error").textContent = "";
}

// Show the form; resolves with the signed-in user.
export function showAuth(session) {
  $("#auth-view").hidden = false;
  setMode(session.first_user ? "signup" : "login", session);
  $("#auth-username").focus();
  return new Promise((resolve) => {
    $("#auth-switch").onclick = () => setMode(mode === "signup" ? "login" : "signup", session);
    $("#auth-form").onsubmit = async (event) => {
      event.preventDefault();
      $("#auth-error").textContent = "";
      $("#auth-submit").disabled = true;
      try {
        const data = await api.post(mode === "signup" ? "/api/auth/signup" : "/api/auth/login", {
          username: $("#auth-username").value, password: $("#auth-password").value });
        api.setCsrf(data.csrf_token);
        $("#auth-password").value = "";
        $("#auth-view").hidden = true;
        resolve(data.user);
      } catch (error) {
        $("#auth-error").textContent = error.status === 429 && error.retryAfter
          ? t("auth.too_many", { seconds: error.retryAfter }) : error.message;
      } finally {
        $("#auth-submit").disabled = false;
      }
    };
  });
}
