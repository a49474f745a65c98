// Tool steps of an answer (each call a collapsible box: name, arguments, result, duration,
// images) and the question a side-effecting tool asks before it runs.

import * as api from "./api.js";
import { $, h, toast } from "./dom.js";
import { formatNumber, t } from "./i18n.js";

// tool_call_id -> the stored tool message holding its result
export function resultsOf(messages) {
  const results = new Map();
  for (const m of messages) if (m.role === "tool" && m.tool_call_id) results.set(m.tool_call_id, m);
  return results;
}

function pretty(json) {
  try { return JSON.stringify(JSON.parse(json), null, 2); } catch { return json || ""; }
}

function shortArgs(json) {
  let text = json || "";
  try {
    const value = JSON.parse(json);
    const parts = Object.values(value || {}).map((v) => (typeof v === "string" ? v : JSON.stringify(v)));
    text = parts.join(", ");
  } catch { /* show as it is */ }
  text = text.replace(/\s+/g, " ").trim();
  return text.length > 60 ? `${text.slice(0, 59)}…` : text;
}

function statusOf(result, running) {
  if (!result) return h("span.tool-status.running", { text: running ? t("tools.running") : t("tools.not_run") });
  const meta = result.metadata || {};
  if (meta.confirmation === "declined" || meta.confirmation === "timeout") {
    return h("span.badge.error", { text: meta.confirmation === "timeout" ? t("tools.timed_out") : t("tools.declined") });
  }
  if (meta.error) return h("span.badge.error", { text: meta.error.replace(/_/g, " ") });
  const ms = meta.duration_ms;
  return h("span.tool-status", { text: ms === undefined ? t("tools.done") : ms < 1000 ? t("tools.ms", { ms: Math.round(ms) }) : t("tools.seconds", { s: formatNumber(ms / 1000, { maximumFractionDigits: 1 }) }) });
}

// One call: <details> collapsed by default; open shows arguments, result and images.
export function toolStep(call, result, { running = false } = {}) {
  const meta = (result && result.metadata) || {};
  const box = h("details.tool-step", { "data-call-id": call.id, "data-tool": call.name });
  if (result && meta.error) box.classList.add("failed");
  box.append(h("summary", {},
    h("span.tool-icon", { "aria-hidden": "true", text: "⚙" }),
    h("span.tool-name", { text: call.name }),
    h("span.tool-args-short.muted", { text: shortArgs(call.arguments) }),
    statusOf(result, running)));
  const detail = h("div.tool-detail");
  detail.append(h("div.tool-label", { text: t("tools.arguments") }), h("pre.tool-args", { text: pretty(call.arguments) }));
  if (result) {
    detail.append(h("div.tool-label", { text: meta.source && meta.source !== "builtin" ? t("tools.result_from", { source: meta.source }) : t("tools.result") }),
      h("pre.tool-result", { text: result.content || t("tools.no_output") }));
    (meta.images || []).forEach((image, i) => {
      if (!/^image\/(png|jpeg|gif|webp)$/.test(image.mime_type)) return;
      detail.append(h("img.tool-image", { src: `data:${image.mime_type};base64,${image.data}`,
        alt: t("tools.image", { n: i + 1, name: call.name }) }));
    });
  }
  box.append(detail);
  // an image is the point of a plot: show the step open when it made one
  if ((meta.images || []).length) box.open = true;
  return box;
}

export function toolSteps(calls, results, { running = false } = {}) {
  return h("div.tool-steps", {}, ...calls.map((call) => toolStep(call, results.get(call.id), { running })));
}

// -- confirmation ------------------------------------------------------------------------------

let asking = null;  // the open question's id

export function askConfirmation(data) {
  const dialog = $("#tool-confirm-dialog");
  asking = data.id;
  $("#tool-confirm-name").textContent = data.tool.name;
  $("#tool-confirm-source").textContent = data.tool.source === "builtin" ? t("tools.builtin") : data.tool.source;
  $("#tool-confirm-description").textContent = data.tool.description || "";
  $("#tool-confirm-args").textContent = pretty(data.call.arguments);
  const minutes = Math.round((data.timeout || 0) / 60);
  $("#tool-confirm-timeout").textContent = minutes >= 1
    ? t("tools.refused_in", { count: minutes })
    : t("tools.refused_soon");
  dialog.returnValue = "";
  if (!dialog.open) dialog.showModal();
}

export function confirmationEnded(data) {
  if (asking !== data.id) return;
  asking = null;
  const dialog = $("#tool-confirm-dialog");
  if (dialog.open) dialog.close();
  if (data.by === "timeout") toast(t("tools.refused_timeout"), "error");
}

async function answer(approve) {
  const id = asking;
  if (!id) return;
  asking = null;
  $("#tool-confirm-dialog").close();
  try {
    await api.post(`/api/tool-confirmations/${encodeURIComponent(id)}`, { approve });
  } catch (error) {
    toast(error.message, "error");
  }
}

export function setupTools() {
  $("#tool-allow").addEventListener("click", () => answer(true));
  $("#tool-deny").addEventListener("click", () => answer(false));
  // Escape (cancel) is a refusal, not a silent wait
  $("#tool-confirm-dialog").addEventListener("cancel", (event) => { event.preventDefault(); answer(false); });
}
