// The open conversation: its messages, the composer, streamed answers, edit, regenerate,
// branch switching and stop (its model / thinking / sampling / tools settings: chat-settings.js).
// An answer that used tools is several stored messages: each step that called tools (shown
// with its calls as collapsible boxes), the tool results (shown inside those boxes), and the
// final answer.

import * as api from "./api.js";
import { $, h, icon, copyText, toast } from "./dom.js";
import { linkCitations, sourcesList } from "./knowledge.js";
import { renderMarkdown } from "./markdown.js";
import { state, emit } from "./state.js";
import { renderControls, setupSettings } from "./chat-settings.js";
import { askConfirmation, confirmationEnded, resultsOf, toolSteps } from "./tools.js";
import { formatNumber, t } from "./i18n.js";
import { editedBadge, feedbackActions, shownContent } from "./feedback.js";

const thread = () => $("#thread");
let pollTimer = null;

// -- opening -----------------------------------------------------------------------------------

export function newChat({ push = true } = {}) {
  stopPolling();
  state.conversation = null;
  state.messages = [];
  state.draftSystemPrompt = state.preferences["ui.default_system_prompt"] || null;
  const model = state.preferences["ui.default_model"];
  state.draftSettings = model ? { model } : {};
  if (push && location.pathname !== "/") history.pushState({}, "", "/");
  render();
  emit("conversation-opened", null);
  $("#prompt").focus();
}

export async function openConversation(id, { push = true } = {}) {
  stopPolling();
  try {
    const data = await api.get(`/api/conversations/${encodeURIComponent(id)}`);
    show(data);
  } catch (error) {
    toast(error.message, "error");
    newChat({ push });
    return;
  }
  if (push && location.pathname !== `/c/${id}`) history.pushState({}, "", `/c/${id}`);
  emit("conversation-opened", id);
  followStreaming();
}

function show(data) {
  state.conversation = data.conversation;
  state.messages = data.messages;
  render();
}

async function reload() {
  if (!state.conversation) return;
  try {
    show(await api.get(`/api/conversations/${state.conversation.id}`));
  } catch (error) {
    toast(error.message, "error");
  }
}

// -- rendering ---------------------------------------------------------------------------------

export function render() {
  const c = state.conversation;
  $("#chat-title").textContent = c ? c.title : t("chat.new_chat");
  document.title = c ? `${c.title} · openwen` : "openwen";
  $("#empty-chat").hidden = state.messages.length > 0;
  const results = resultsOf(state.messages);
  const shown = state.messages.filter((m) => m.role !== "tool");
  thread().replaceChildren(...shown.map((m) => renderMessage(m, results)));
  attachStream();
  renderControls();
  scrollToEnd(true);
}

const isStep = (m) => m.role === "assistant" && (m.tool_calls || []).length > 0;

function renderMessage(m, results = new Map()) {
  const el = h(`article.msg.${m.role}`, { "data-id": m.id, "aria-label": roleLabel(m.role) });
  if (m.status === "streaming") el.classList.add("streaming");
  if (isStep(m)) el.classList.add("step");
  if (m.role === "assistant" && m.reasoning) el.append(thinkingBox(m.reasoning, false));
  const body = h("div.body");
  const citations = (m.metadata && m.metadata.citations) || [];
  if (m.role === "assistant") {
    renderMarkdown(body, shownContent(m), { streaming: false });
    linkCitations(body, citations);
  } else body.textContent = m.content;
  if (m.role !== "assistant" || m.content || (m.status !== "error" && !isStep(m))) el.append(body);
  if (isStep(m)) el.append(toolSteps(m.tool_calls, results, { running: Boolean(currentStream()) }));
  if (m.status === "error") {
    const error = (m.metadata && m.metadata.error) || {};
    el.append(h("div.error-box", { role: "alert", text: error.message || t("chat.answer_failed") }));
  }
  if (m.role === "assistant" && citations.length && !isStep(m)) el.append(sourcesBox(m.content, citations));
  el.append(metaRow(m));
  return el;
}

// The cited sources under an answer (or, when none is cited, all it was given, folded).
function sourcesBox(content, citations) {
  const cited = citations.filter((c) => (content || "").includes(`[${c.number}]`));
  if (cited.length) return sourcesList(cited);
  return h("details.sources-box", {}, h("summary", { text: t("chat.sources", { count: citations.length }) }), sourcesList(citations));
}

function roleLabel(role) {
  return { user: t("chat.role_user"), assistant: t("chat.role_assistant"), system: t("chat.role_system"), tool: t("chat.role_tool") }[role] || role;
}

function thinkingBox(text, open) {
  const box = h("details.thinking", { open },
    h("summary", { text: open ? t("chat.thinking_now") : t("chat.thinking") }),
    h("div.thinking-body", { text }));
  return box;
}

function metaRow(m) {
  const row = h("div.meta");
  const actions = h("div.actions");
  const busy = Boolean(currentStream());
  const siblings = m.sibling_ids || [m.id];
  if (siblings.length > 1) {
    const index = siblings.indexOf(m.id);
    actions.append(h("span.branch", {},
      h("button.icon-button", { type: "button", "aria-label": t("chat.previous_version"), disabled: busy || index <= 0,
        onclick: () => switchTo(siblings[index - 1]) }, icon("left")),
      h("span", { text: `${index + 1}/${siblings.length}`, "aria-label": t("chat.version_of", { n: index + 1, total: siblings.length }) }),
      h("button.icon-button", { type: "button", "aria-label": t("chat.next_version"),
        disabled: busy || index >= siblings.length - 1, onclick: () => switchTo(siblings[index + 1]) }, icon("right"))));
  }
  if (m.content) {
    actions.append(h("button.icon-button", { type: "button", "aria-label": t("chat.copy_message"), title: t("chat.copy"),
      onclick: async () => { await copyText(shownContent(m)); toast(t("chat.copied")); } }, icon("copy")));
  }
  if (m.role === "user") {
    actions.append(h("button.icon-button", { type: "button", "aria-label": t("chat.edit_message"), title: t("chat.edit"),
      disabled: busy, onclick: () => startEdit(m) }, icon("edit")));
  }
  if (m.role === "assistant" && m.status !== "streaming" && !isStep(m)) {
    actions.append(h("button.icon-button", { type: "button", "aria-label": t("chat.regenerate_answer"),
      title: t("chat.regenerate"), disabled: busy, onclick: () => regenerate(m.id) }, icon("regenerate")));
    if (m.status !== "error" && typeof m.id === "number") actions.append(...feedbackActions(m, { busy, onChange: () => render() }));
  }
  row.append(actions);
  const edited = m.role === "assistant" ? editedBadge(m, () => render()) : null;
  if (edited) row.append(edited);
  if (m.status === "incomplete") row.append(h("span.badge", { text: t("chat.stopped") }));
  if (m.status === "error") row.append(h("span.badge.error", { text: t("chat.error") }));
  if (m.role === "assistant" && !isStep(m)) {
    const stats = statsOf(m.metadata || {});
    if (stats) row.append(h("span", { text: stats }));
  }
  if (m.metadata && m.metadata.knowledge_error) {
    row.append(h("span.badge.error", { text: t("chat.documents_unavailable"), title: m.metadata.knowledge_error }));
  }
  if (m.metadata && m.metadata.tools_dropped) {
    row.append(h("span.badge", { text: t("chat.no_tools_context") }));
  }
  return row;
}

function statsOf(meta) {
  const parts = [];
  if (meta.model) parts.push(meta.model);
  const tokens = meta.usage && meta.usage.completion_tokens;
  if (tokens) parts.push(t("chat.tokens", { count: tokens }));
  const decode = meta.timings && meta.timings.decode_ms;
  if (tokens && decode > 0) parts.push(t("chat.tok_per_s", { rate: formatNumber(tokens / (decode / 1000), { maximumFractionDigits: 1 }) }));
  return parts.join(" · ");
}

function nearBottom() {
  const box = $("#messages");
  return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
}

function scrollToEnd(force = false) {
  const box = $("#messages");
  if (force || nearBottom()) box.scrollTop = box.scrollHeight;
}

// -- sending and streaming ---------------------------------------------------------------------
// One stream per conversation; it keeps running (and being saved) while another conversation is
// open, and is painted again when its conversation comes back.

export function currentStream() {
  return state.conversation ? state.streams.get(state.conversation.id) || null : null;
}

// The open conversation, saved first when it is a new chat.
export async function ensureConversation() {
  if (state.conversation) return state.conversation;
  const created = await api.post("/api/conversations", {
    settings: state.draftSettings, system_prompt: state.draftSystemPrompt || null,
  });
  state.conversation = created.conversation;
  history.pushState({}, "", `/c/${created.conversation.id}`);
  emit("conversations-changed");
  emit("conversation-opened", created.conversation.id);
  render();
  return state.conversation;
}

export async function send() {
  const prompt = $("#prompt");
  const content = prompt.value;
  if (!content.trim() || currentStream()) return;
  try {
    await ensureConversation();
  } catch (error) {
    toast(error.message, "error");
    return;
  }
  const last = state.messages[state.messages.length - 1];
  prompt.value = "";
  autosize();
  await runStream(`/api/conversations/${state.conversation.id}/messages`,
    { content, parent_id: last ? last.id : null }, { kind: "send", content });
}

async function regenerate(messageId) {
  if (currentStream()) return;
  await runStream(`/api/messages/${messageId}/regenerate`, {}, { kind: "regenerate", targetId: messageId });
}

async function submitEdit(message, content) {
  if (!content.trim() || currentStream()) return;
  await runStream(`/api/messages/${message.id}/edit`, { content }, { kind: "edit", targetId: message.id, content });
}

const visible = (stream) => state.conversation && state.conversation.id === stream.conversationId;

async function runStream(url, body, mode) {
  const stream = { controller: new AbortController(), conversationId: state.conversation.id,
    turnId: null, messageId: null, content: "", reasoning: "", calls: [], citations: [],
    el: null, thinking: null, frame: 0, mode };
  state.streams.set(stream.conversationId, stream);
  mode.before = state.messages;
  showPending(mode);
  let failed = null;
  try {
    await api.stream(url, body, (name, data) => onEvent(stream, name, data), stream.controller.signal);
  } catch (error) {
    if (error.name !== "AbortError") failed = error;
  }
  state.streams.delete(stream.conversationId);
  if (failed) {
    toast(failed.message, "error");
    if (mode.kind === "send" && visible(stream) && !$("#prompt").value) $("#prompt").value = mode.content;
  }
  if (visible(stream)) await reload();
  emit("conversations-changed");
}

// Show the question and an empty answer at once, before the server confirms.
// The index of the first message of the answer holding message `index` (with tools, an
// answer is several messages after the question).
function answerStart(messages, index) {
  let start = index;
  while (start > 0 && messages[start - 1].role !== "user") start -= 1;
  return start;
}

function showPending(mode) {
  let index = mode.targetId ? state.messages.findIndex((m) => m.id === mode.targetId) : -1;
  let messages = state.messages;
  if (mode.kind === "edit" && index >= 0) messages = messages.slice(0, index);
  if (mode.kind === "regenerate" && index >= 0) {
    if (state.messages[index].role !== "user") index = answerStart(state.messages, index);
    messages = messages.slice(0, state.messages[index].role === "user" ? index + 1 : index);
    mode.replaced = state.messages[index];  // the answer a new version is made of
  }
  const pending = [...messages];
  if (mode.kind !== "regenerate") pending.push({ id: "pending-user", role: "user", content: mode.content, status: "complete" });
  pending.push({ id: "pending-answer", role: "assistant", content: "", reasoning: "", status: "streaming" });
  state.messages = pending;
  render();
}

function onEvent(stream, name, data) {
  if (name === "start") return started(stream, data);
  if (name === "message") return stepSaved(stream, data.message);
  if (name === "context") return contextGiven(stream, data);
  if (name === "tool_confirm") return askConfirmation(data);
  if (name === "tool_confirmed") return confirmationEnded(data);
  if (name === "tool_call") {
    stream.calls.push(data);
    schedulePaint(stream);
  } else if (name === "text") {
    stream.content += data.text;
    if (stream.thinking && stream.thinking.open) closeThinking(stream);
    schedulePaint(stream);
  } else if (name === "reasoning") {
    stream.reasoning += data.text;
    schedulePaint(stream);
  } else if ((name === "done" || name === "error") && data.message && visible(stream)) {
    replaceMessage(data.message);
  }
}

function contextGiven(stream, data) {
  stream.citations = data.citations || [];
  if (data.remembered) toast(t("chat.remembered", { text: data.remembered.text }));
  schedulePaint(stream);
}

// A message of the answer was stored: a finished step, a tool result, or the next step.
function stepSaved(stream, message) {
  if (message.role === "assistant" && message.status === "streaming") {
    Object.assign(stream, { messageId: message.id, content: "", reasoning: "", calls: [], thinking: null });
  } else if (message.id === stream.messageId) {
    Object.assign(stream, { content: "", reasoning: "", calls: [], thinking: null });
  }
  if (!visible(stream)) return;
  const index = state.messages.findIndex((m) => m.id === message.id);
  if (index >= 0) state.messages[index] = { ...message, sibling_ids: state.messages[index].sibling_ids };
  else state.messages.push({ ...message, sibling_ids: [message.id] });
  render();
}

function started(stream, data) {
  stream.messageId = data.message.id;
  stream.turnId = data.message.id;
  if (!visible(stream)) return;
  const { mode } = stream;
  state.conversation = data.conversation;
  const pending = state.messages.filter((m) => typeof m.id === "number");
  const old = mode.before.find((m) => m.id === mode.targetId);
  if (data.user_message) {
    const siblings = old && mode.kind === "edit" ? [...(old.sibling_ids || [old.id]), data.user_message.id] : [data.user_message.id];
    pending.push({ ...data.user_message, sibling_ids: siblings });
  }
  let answerSiblings = [data.message.id];
  const replaced = mode.replaced;
  if (mode.kind === "regenerate" && replaced && replaced.role === "assistant") {
    answerSiblings = [...(replaced.sibling_ids || [replaced.id]), data.message.id];
  }
  pending.push({ ...data.message, sibling_ids: answerSiblings });
  state.messages = pending;
  render();
}

// After a render: point the conversation's running stream at its answer's new element.
function attachStream() {
  const stream = currentStream();
  if (!stream || !stream.messageId) return;
  const message = state.messages.find((m) => m.id === stream.messageId);
  if (message && message.status !== "streaming") return;  // between steps: tools are running
  stream.el = thread().querySelector(`[data-id="${stream.messageId}"]`);
  stream.thinking = null;
  if (stream.el) {
    stream.el.classList.add("streaming");
    paint(stream);
  }
}

function closeThinking(stream) {
  stream.thinking.open = false;
  stream.thinking.querySelector("summary").textContent = t("chat.thinking");
}

function schedulePaint(stream) {
  if (stream.frame || !stream.el || !visible(stream)) return;
  stream.frame = requestAnimationFrame(() => paint(stream));
}

function paint(stream) {
  stream.frame = 0;
  if (!stream.el || !stream.el.isConnected) return;
  const stick = nearBottom();
  if (stream.reasoning) {
    if (!stream.thinking) {
      stream.thinking = stream.el.querySelector("details.thinking") || thinkingBox("", !stream.content);
      stream.el.prepend(stream.thinking);
    }
    stream.thinking.querySelector(".thinking-body").textContent = stream.reasoning;
  }
  let body = stream.el.querySelector(".body");
  if (!body) {
    body = h("div.body");
    stream.el.insertBefore(body, stream.el.querySelector(".meta"));
  }
  renderMarkdown(body, stream.content, { streaming: true });
  linkCitations(body, stream.citations);
  const pending = stream.el.querySelector(".tool-steps");
  if (stream.calls.length) {
    const steps = toolSteps(stream.calls, new Map(), { running: true });
    if (pending) pending.replaceWith(steps);
    else stream.el.insertBefore(steps, stream.el.querySelector(".meta"));
  } else if (pending) pending.remove();
  if (stick) scrollToEnd(true);
}

function replaceMessage(message) {
  const index = state.messages.findIndex((m) => m.id === message.id);
  if (index < 0) return;
  state.messages[index] = { ...message, sibling_ids: state.messages[index].sibling_ids };
}

export async function stop() {
  const stream = currentStream();
  if (!stream) return;
  if (!stream.turnId) {
    stream.controller.abort();
    return;
  }
  try {
    await api.post(`/api/messages/${stream.turnId}/stop`);
  } catch {
    stream.controller.abort();
  }
}

// -- edit, branches ----------------------------------------------------------------------------

function startEdit(message) {
  const el = thread().querySelector(`[data-id="${message.id}"]`);
  if (!el) return;
  const area = h("textarea", { rows: 3, "aria-label": t("chat.edit_yours") });
  area.value = message.content;
  const box = h("div.edit-box", {}, area, h("div.row", {},
    h("button.ghost", { type: "button", text: t("common.cancel"), onclick: () => render() }),
    h("button.primary", { type: "button", text: t("chat.send"), onclick: () => submitEdit(message, area.value) })));
  area.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !composing(event)) {
      event.preventDefault();
      submitEdit(message, area.value);
    } else if (event.key === "Escape") {
      event.stopPropagation();
      render();
    }
  });
  el.replaceChildren(box);
  area.focus();
}

async function switchTo(messageId) {
  if (currentStream()) return;
  try {
    show(await api.post(`/api/messages/${messageId}/switch`));
  } catch (error) {
    toast(error.message, "error");
  }
}

// -- answers streaming elsewhere (another tab) -------------------------------------------------

function followStreaming() {
  const last = state.messages[state.messages.length - 1];
  if (!last || last.status !== "streaming" || currentStream()) return;
  pollTimer = setTimeout(async () => {
    pollTimer = null;
    if (!state.conversation || state.conversation.id !== last.conversation_id) return;
    try {
      const { message } = await api.get(`/api/messages/${last.id}`);
      if (message.status === "streaming") {
        replaceMessage(message);
        render();
        followStreaming();
      } else {
        await reload();
      }
    } catch { /* gone */ }
  }, 1000);
}

function stopPolling() {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = null;
}

// -- composer ----------------------------------------------------------------------------------

// An input method (Chinese, Japanese, ...) is composing: its Enter picks a candidate, it never
// sends. Some browsers report the composing Enter only as keyCode 229.
export function composing(event) {
  return event.isComposing || event.keyCode === 229;
}

function autosize() {
  const prompt = $("#prompt");
  prompt.style.height = "auto";
  prompt.style.height = `${Math.min(prompt.scrollHeight, window.innerHeight * 0.4)}px`;
}

export function setupChat() {
  const prompt = $("#prompt");
  $("#composer").addEventListener("submit", (event) => { event.preventDefault(); send(); });
  prompt.addEventListener("input", autosize);
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !composing(event)) {
      event.preventDefault();
      send();
    }
  });
  $("#stop").addEventListener("click", stop);
  setupSettings();
  document.addEventListener("localechange", () => render());
  window.addEventListener("popstate", () => route({ push: false }));
}

export function route({ push = false } = {}) {
  const match = /^\/c\/([\w-]+)$/.exec(location.pathname);
  if (match) openConversation(match[1], { push });
  else newChat({ push });
}
