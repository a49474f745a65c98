// Model output as safe HTML: Markdown (marked) with raw HTML shown as text, sanitised again
// (DOMPurify), code highlighted (highlight.js) with a copy button per block.

import { Marked } from "../vendor/marked.esm.js";
import hljs from "../vendor/highlight/core.min.js";
import bash from "../vendor/highlight/languages/bash.min.js";
import c from "../vendor/highlight/languages/c.min.js";
import cpp from "../vendor/highlight/languages/cpp.min.js";
import css from "../vendor/highlight/languages/css.min.js";
import diff from "../vendor/highlight/languages/diff.min.js";
import go from "../vendor/highlight/languages/go.min.js";
import java from "../vendor/highlight/languages/java.min.js";
import javascript from "../vendor/highlight/languages/javascript.min.js";
import json from "../vendor/highlight/languages/json.min.js";
import markdown from "../vendor/highlight/languages/markdown.min.js";
import plaintext from "../vendor/highlight/languages/plaintext.min.js";
import python from "../vendor/highlight/languages/python.min.js";
import rust from "../vendor/highlight/languages/rust.min.js";
import shell from "../vendor/highlight/languages/shell.min.js";
import sql from "../vendor/highlight/languages/sql.min.js";
import typescript from "../vendor/highlight/languages/typescript.min.js";
import xml from "../vendor/highlight/languages/xml.min.js";
import yaml from "../vendor/highlight/languages/yaml.min.js";
import { copyText, h, icon } from "./dom.js";
import { t } from "./i18n.js";

const LANGUAGES = { bash, c, cpp, css, diff, go, java, javascript, json, markdown, plaintext,
  python, rust, shell, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);
hljs.configure({ ignoreUnescapedHTML: true });

const escapeHtml = (text) => text.replace(/[&<>"']/g, (ch) => (
  { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch]));

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    // HTML written by the model is shown as text, never interpreted
    html({ text }) { return escapeHtml(text); },
    code({ text, lang }) {
      const language = escapeHtml((lang || "").trim().split(/\s+/)[0].toLowerCase());
      return `<pre><code data-lang="${language}">${escapeHtml(text)}</code></pre>\n`;
    },
  },
});

const PURIFY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option", "iframe",
    "object", "embed", "svg", "math"],
  FORBID_ATTR: ["style", "class", "id", "name"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
};

let hooked = false;
function purifier() {
  const purify = window.DOMPurify;
  if (!hooked && purify) {
    purify.addHook("afterSanitizeAttributes", (node) => {
      if (node.tagName === "A") {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer nofollow");
      }
    });
    hooked = true;
  }
  return purify;
}

// Markdown text as a sanitised fragment (falls back to plain text if the sanitiser is missing).
export function toFragment(text) {
  const purify = purifier();
  if (!purify) return document.createTextNode(text);
  const html = marked.parse(text || "");
  return purify.sanitize(html, { ...PURIFY, RETURN_DOM_FRAGMENT: true });
}

function decorateCode(root, highlight) {
  for (const pre of root.querySelectorAll("pre")) {
    const code = pre.querySelector("code") || pre;
    const language = code.getAttribute("data-lang") || "text";
    if (highlight && hljs.getLanguage(language)) {
      code.innerHTML = hljs.highlight(code.textContent, { language, ignoreIllegals: true }).value;
    }
    const copy = h("button.copy", { type: "button", "aria-label": t("markdown.copy_code", { language }) },
      icon("copy"), ` ${t("chat.copy")}`);
    copy.addEventListener("click", async () => {
      await copyText(code.textContent);
      copy.replaceChildren(icon("check"), ` ${t("chat.copied")}`);
      setTimeout(() => copy.replaceChildren(icon("copy"), ` ${t("chat.copy")}`), 1500);
    });
    const head = h("div.code-head", {}, h("span", { text: language }), copy);
    const block = h("div.code-block", {}, head);
    pre.replaceWith(block);
    block.append(pre);
  }
}

// Render Markdown into `el`. Code is highlighted unless `streaming` (then only at the end).
export function renderMarkdown(el, text, { streaming = false } = {}) {
  el.replaceChildren(toFragment(text));
  decorateCode(el, !streaming);
}
