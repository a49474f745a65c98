// Thumbs up/down and edited answers. Each finished answer gets 👍 / 👎 (a toggle: pressing the
// pressed one again clears it) and an edit button; an edited answer is stored beside the
// original (PUT /api/messages/{id}/feedback) and shown instead of it, marked "edited", with a
// way back to the original. Rated and edited answers can become training data (Train dialog,
// "From my conversations").

import * as api from "./api.js";
import { h, icon, toast } from "./dom.js";
import { t } from "./i18n.js";

const ratingOf = (m) => (m.feedback && m.feedback.rating) || null;
export const editedText = (m) => (m.feedback && m.feedback.edited_content) || null;

// The text an answer shows: the user's edited version when there is one.
export function shownContent(m) {
  return m.role === "assistant" ? editedText(m) ?? m.content : m.content;
}

async function put(m, body, onChange) {
  try {
    const data = await api.put(`/api/messages/${m.id}/feedback`, body);
    m.feedback = data.feedback;
    onChange(m);
  } catch (error) {
    toast(error.message, "error");
  }
}

// The 👍 / 👎 / edit buttons of a finished answer.
export function feedbackActions(m, { busy, onChange }) {
  const rating = ratingOf(m);
  const thumb = (value, label, glyph) => h(`button.icon-button.rate.rate-${value}`, {
    type: "button", "aria-label": t(label), title: t(label), "aria-pressed": String(rating === value),
    disabled: busy, onclick: () => put(m, { rating: rating === value ? null : value }, onChange),
  }, icon(glyph));
  return [
    thumb("good", "feedback.good", "thumbup"),
    thumb("bad", "feedback.bad", "thumbdown"),
    h("button.icon-button.edit-answer", { type: "button", "aria-label": t("feedback.edit_answer"),
      title: t("feedback.edit"), disabled: busy, onclick: () => startAnswerEdit(m, onChange) }, icon("edit")),
  ];
}

// "edited" and, to see or restore it, the original answer.
export function editedBadge(m, onChange) {
  if (!editedText(m)) return null;
  return h("span.edited", {},
    h("span.badge", { text: t("feedback.edited") }),
    h("details.original", {}, h("summary", { text: t("feedback.show_original") }),
      h("div.original-body", { text: m.content }),
      h("button.ghost", { type: "button", text: t("feedback.restore_original"),
        onclick: () => put(m, { edited_content: null }, onChange) })));
}

function startAnswerEdit(m, onChange) {
  const el = document.querySelector(`#thread [data-id="${m.id}"]`);
  if (!el) return;
  const area = h("textarea", { rows: 6, "aria-label": t("feedback.edit_answer") });
  area.value = shownContent(m);
  const save = () => {
    if (!area.value.trim()) return toast(t("feedback.empty_edit"), "error");
    put(m, { edited_content: area.value }, onChange);
  };
  const box = h("div.edit-box", {}, area, h("div.row", {},
    h("button.ghost", { type: "button", text: t("common.cancel"), onclick: () => onChange(m) }),
    h("button.primary", { type: "button", text: t("feedback.save_edit"), onclick: save })));
  area.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      onChange(m);
    }
  });
  el.replaceChildren(box);
  area.focus();
}
