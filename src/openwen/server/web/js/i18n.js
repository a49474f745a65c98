// Every user-facing string of the web app comes from a catalog: one object per locale in
// locales/<locale>.js (en is the fallback for a key a locale lacks).
//
//   t("models.download", { name })       -> "Download qwen3.5:4b" / "下载 qwen3.5:4b"
//   t("sidebar.results", { count: 3 })   -> uses "sidebar.results_one" / "_other" when they exist
//   <button data-i18n="ui.sign_in">      -> textContent set by translatePage()
//   data-i18n-placeholder / -title / -aria-label / -alt set those attributes
//
// To add a page (Train, ...): add its keys, prefixed with the page's name, to EVERY locale file,
// mark its markup with data-i18n* and call t() in its code; never write a string in markup or JS.
// Numbers, sizes, dates and durations are formatted for the locale with the helpers below.

import en from "./locales/en.js";
import zhCN from "./locales/zh-CN.js";

const CATALOGS = { en, "zh-CN": zhCN };
export const LOCALES = [
  { id: "en", name: "English" },
  { id: "zh-CN", name: "简体中文" },
];

let current = "en";

// The browser's preferred supported locale (any zh* is Simplified Chinese here).
export function browserLocale() {
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const lower = String(tag).toLowerCase();
    if (lower.startsWith("zh")) return "zh-CN";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

export function locale() { return current; }

export function setLocale(id) {
  current = CATALOGS[id] ? id : "en";
  document.documentElement.lang = current;
  translatePage();
  document.dispatchEvent(new CustomEvent("localechange", { detail: current }));
}

function lookup(key) {
  const own = CATALOGS[current];
  if (Object.hasOwn(own, key)) return own[key];
  if (Object.hasOwn(en, key)) return en[key];
  return key;
}

export function t(key, params = {}) {
  let text;
  if (typeof params.count === "number") {
    const form = new Intl.PluralRules(current).select(params.count);
    const plural = `${key}_${form}`;
    text = Object.hasOwn(CATALOGS[current], plural) || Object.hasOwn(en, plural) ? lookup(plural) : lookup(key);
  } else {
    text = lookup(key);
  }
  return text.replace(/\{(\w+)\}/g, (whole, name) => {
    if (!(name in params)) return whole;
    const value = params[name];
    return typeof value === "number" ? formatNumber(value) : String(value);
  });
}

const ATTRIBUTES = ["placeholder", "title", "aria-label", "alt"];

export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const attr of ATTRIBUTES) {
    for (const el of root.querySelectorAll(`[data-i18n-${attr}]`)) {
      el.setAttribute(attr, t(el.getAttribute(`data-i18n-${attr}`)));
    }
  }
}

// -- formatting for the locale -------------------------------------------------------------------

export function formatNumber(value, options = {}) {
  return new Intl.NumberFormat(current, options).format(value);
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["byte", "kilobyte", "megabyte", "gigabyte", "terabyte"];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return new Intl.NumberFormat(current, {
    style: "unit", unit: units[unit], unitDisplay: "short",
    maximumFractionDigits: unit === 0 ? 0 : 1,
  }).format(value);
}

export function formatDate(value) {
  const date = value instanceof Date ? value : new Date(value);
  return new Intl.DateTimeFormat(current, { dateStyle: "medium", timeStyle: "short" }).format(date);
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const parts = s >= 3600
    ? [[Math.floor(s / 3600), "hour"], [Math.floor((s % 3600) / 60), "minute"]]
    : s >= 60 ? [[Math.floor(s / 60), "minute"], [s % 60, "second"]] : [[s, "second"]];
  return parts.filter(([n], i) => n || i === 0)
    .map(([n, unit]) => new Intl.NumberFormat(current, { style: "unit", unit, unitDisplay: "short" }).format(n))
    .join(" ");
}
