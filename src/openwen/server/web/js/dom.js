// Small DOM helpers: element building (text only, never HTML strings), toasts, confirmation.
import { t } from "./i18n.js";

export const $ = (selector, root = document) => root.querySelector(selector);

// h("button.icon-button", {onclick, "aria-label": "Copy"}, child, ...)
export function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
const ICONS = {
  copy: "M8 8h11v12H8zM5 16V4h11",
  edit: "M4 20h4L19 9l-4-4L4 16zM13.5 6.5l4 4",
  regenerate: "M20 11a8 8 0 10-2.3 5.7M20 4v7h-7",
  left: "M15 6l-6 6 6 6",
  right: "M9 6l6 6-6 6",
  more: "M5 12h.01M12 12h.01M19 12h.01",
  check: "M5 12l5 5 9-10",
  file: "M6 3h8l4 4v14H6zM14 3v4h4M9 12h6M9 16h6",
  thumbup: "M7 11v9H4v-9zM7 11l4-8c1.7 0 2.5 1 2.2 2.6L12.6 9H19a2 2 0 012 2.3l-1.2 6.9A2 2 0 0117.8 20H7",
  thumbdown: "M7 13V4H4v9zM7 13l4 8c1.7 0 2.5-1 2.2-2.6L12.6 15H19a2 2 0 002-2.3l-1.2-6.9A2 2 0 0017.8 4H7",
};

export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICONS[name]);
  if (name === "more") path.setAttribute("stroke-width", "3");
  svg.append(path);
  return svg;
}

export function toast(message, kind = "info") {
  const el = h(`div.toast${kind === "error" ? ".error" : ""}`, { text: message });
  $("#toasts").append(el);
  setTimeout(() => el.remove(), kind === "error" ? 6000 : 3000);
}

export function confirmDialog(text, okLabel = t("common.delete")) {
  const dialog = $("#confirm-dialog");
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h("textarea", { value: text, readonly: true });
    area.className = "visually-hidden";
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}

export function closeOnCancel(dialog) {
  for (const button of dialog.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => dialog.close());
  }
}
