// Documents: files attached to a conversation (paperclip, drag and drop), named collections,
// citations [1], [2] in answers linked to the passage they cite, and the passage viewer.

import * as api from "./api.js";
import { $, h, icon, toast, confirmDialog, closeOnCancel } from "./dom.js";
import { state, on } from "./state.js";
import { formatNumber, t } from "./i18n.js";

const SUPPORTED = [".pdf", ".docx", ".md", ".markdown", ".txt", ".text", ".html", ".htm", ".csv", ".tsv"];
const KB = "/api/knowledge";
let ensureConversation = null;  // () => Promise<conversation>, given by the chat
let chips = [];  // attachments shown above the composer: {name, status, progress, doc, error}

const extension = (name) => (/\.[^.]+$/.exec(name.toLowerCase()) || [""])[0];

// -- attachments -------------------------------------------------------------------------------

// The chips of the open conversation: its attached documents, and uploads in progress or failed.
export async function loadAttachments() {
  const c = state.conversation;
  renderChips();
  if (!c) return;
  try {
    const { documents } = await api.get(`${KB}/documents?conversation_id=${encodeURIComponent(c.id)}`);
    const others = chips.filter((chip) => chip.conversationId !== c.id || chip.status !== "ready");
    const loaded = documents.map((doc) => ({ name: doc.filename, status: "ready", doc, conversationId: c.id }));
    const uploaded = new Set(loaded.map((chip) => chip.doc.id));
    chips = [...loaded, ...others.filter((chip) => !(chip.doc && uploaded.has(chip.doc.id)))];
  } catch (error) {
    if (error.status !== 404) toast(error.message, "error");
  }
  renderChips();
}

function renderChips() {
  const id = state.conversation ? state.conversation.id : null;
  const shown = chips.filter((chip) => chip.conversationId === id);
  const box = $("#attachments");
  box.hidden = shown.length === 0;
  box.replaceChildren(...shown.map(chipElement));
}

function chipElement(chip) {
  const el = h(`div.chip.${chip.status}`, { role: "listitem", "data-name": chip.name });
  el.append(h("span.chip-icon", {}, icon("file")), h("span.chip-name", { text: chip.name }));
  if (chip.status === "uploading") {
    const percent = Math.round((chip.progress || 0) * 100);
    el.append(h("progress", { max: 100, value: percent, "aria-label": t("docs.uploading_name", { name: chip.name }) }),
      h("span.chip-state", { text: percent < 100 ? formatNumber(percent / 100, { style: "percent" }) : t("docs.reading") }));
  } else if (chip.status === "error") {
    el.append(h("span.chip-state", { role: "alert", text: chip.error }));
    el.append(h("button.icon-button.chip-remove", { type: "button", "aria-label": t("docs.dismiss", { name: chip.name }), text: "×",
      onclick: () => { chips = chips.filter((c) => c !== chip); renderChips(); } }));
  } else {
    el.append(h("span.chip-state.muted", { text: t("docs.passages", { count: chip.doc.chunks }) }));
    el.append(h("button.icon-button.chip-remove", { type: "button", "aria-label": t("docs.detach", { name: chip.name }), text: "×",
      onclick: () => detach(chip) }));
  }
  return el;
}

async function detach(chip) {
  const c = state.conversation;
  if (!c) return;
  try {
    await api.del(`${KB}/conversations/${encodeURIComponent(c.id)}/documents/${encodeURIComponent(chip.doc.id)}`);
    chips = chips.filter((x) => x !== chip);
    renderChips();
  } catch (error) {
    toast(error.message, "error");
  }
}

export async function attachFiles(files) {
  files = [...files];
  if (!files.length) return;
  let conversation;
  try {
    conversation = await ensureConversation();
  } catch (error) {
    toast(error.message, "error");
    return;
  }
  await Promise.all(files.map((file) => uploadOne(file, conversation)));
}

async function uploadOne(file, conversation) {
  const chip = { name: file.name, status: "uploading", progress: 0, conversationId: conversation.id };
  chips.push(chip);
  renderChips();
  if (!SUPPORTED.includes(extension(file.name))) {
    return failed(chip, t("docs.unsupported", { types: SUPPORTED.join(", ") }));
  }
  if (file.size === 0) return failed(chip, t("docs.empty_file"));
  const url = `${KB}/documents?filename=${encodeURIComponent(file.name)}&conversation_id=${encodeURIComponent(conversation.id)}`;
  try {
    const data = await api.upload(url, file, (fraction) => { chip.progress = fraction; renderChips(); });
    Object.assign(chip, { status: "ready", doc: data.document });
    chips = chips.filter((other) => other === chip || !other.doc || other.doc.id !== chip.doc.id);
    renderChips();
  } catch (error) {
    failed(chip, error.message);
  }
}

function failed(chip, message) {
  Object.assign(chip, { status: "error", error: message });
  renderChips();
}

function setupDrop() {
  const zone = $("#chat");
  let depth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  zone.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    depth += 1;
    zone.classList.add("dropping");
  });
  zone.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove("dropping");
  });
  zone.addEventListener("dragover", (event) => { if (hasFiles(event)) event.preventDefault(); });
  zone.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    zone.classList.remove("dropping");
    attachFiles(event.dataTransfer.files);
  });
}

// -- citations ---------------------------------------------------------------------------------

// Turn [n] in an answer's rendered text into links to source n (code is left alone).
export function linkCitations(root, citations) {
  if (!citations || !citations.length) return;
  const byNumber = new Map(citations.map((c) => [c.number, c]));
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) => (node.parentElement.closest("pre, code, a") ? NodeFilter.FILTER_REJECT
      : /\[\d+\]/.test(node.nodeValue) ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_SKIP),
  });
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const node of nodes) {
    const parts = node.nodeValue.split(/(\[\d+\])/);
    if (parts.length < 2) continue;
    const pieces = parts.map((part) => {
      const match = /^\[(\d+)\]$/.exec(part);
      const citation = match && byNumber.get(Number(match[1]));
      return citation ? citationLink(citation) : document.createTextNode(part);
    });
    node.replaceWith(...pieces);
  }
}

function citationLink(citation) {
  return h("a.citation", { href: "#", title: citation.label, "data-number": citation.number,
    "aria-label": t("docs.source", { n: citation.number, label: citation.label }), text: `[${citation.number}]`,
    onclick: (event) => { event.preventDefault(); openPassage(citation); } });
}

// The numbered sources under an answer.
export function sourcesList(citations) {
  return h("ol.sources", { "aria-label": t("docs.sources") }, ...citations.map((c) => h("li", {},
    h("a.source", { href: "#", text: `[${c.number}] ${c.label}`,
      onclick: (event) => { event.preventDefault(); openPassage(c); } }))));
}

const CONTEXT_CHARS = 700;

export async function openPassage(citation) {
  const dialog = $("#passage-dialog");
  $("#passage-title").textContent = `[${citation.number}] ${citation.label}`;
  const body = $("#passage-text");
  body.replaceChildren(h("p.muted", { text: t("common.loading") }));
  if (!dialog.open) dialog.showModal();
  let text;
  try {
    ({ text } = await api.get(`${KB}/documents/${encodeURIComponent(citation.document_id)}/text`));
  } catch (error) {
    body.replaceChildren(h("p.form-error", { text: error.status === 404
      ? t("docs.gone") : error.message }));
    return;
  }
  const whole = citation.chunk_id === null || citation.chunk_id === undefined;
  const start = whole ? 0 : citation.char_start;
  const end = whole ? 0 : citation.char_end;
  const from = whole ? 0 : Math.max(0, start - CONTEXT_CHARS);
  const to = whole ? Math.min(text.length, 20000) : Math.min(text.length, end + CONTEXT_CHARS);
  const mark = h("mark.passage", { text: text.slice(start, end) });
  body.replaceChildren(
    from > 0 ? "…" : "", text.slice(from, start), whole ? "" : mark, text.slice(whole ? 0 : end, to),
    to < text.length ? "…" : "");
  if (!whole) mark.scrollIntoView({ block: "center" });
}

// -- collections and the documents dialog ------------------------------------------------------

export async function collectionNames() {
  try {
    const { collections } = await api.get(`${KB}/collections`);
    return collections.map((c) => c.name);
  } catch {
    return [];
  }
}

async function openDocuments() {
  $("#documents-error").textContent = "";
  $("#documents-dialog").showModal();
  await loadDocuments();
}

async function loadDocuments() {
  try {
    const [{ collections }, { documents }] = await Promise.all([
      api.get(`${KB}/collections`), api.get(`${KB}/documents`)]);
    const names = collections.map((c) => c.name);
    $("#collection-list").replaceChildren(...collections.map(collectionItem));
    if (!collections.length) $("#collection-list").append(h("li.muted", { text: t("docs.no_collections") }));
    const target = $("#upload-collection");
    const chosen = target.value;
    target.replaceChildren(h("option", { value: "", text: t("docs.no_collection") }),
      ...names.map((n) => h("option", { value: n, text: n })));
    target.value = names.includes(chosen) ? chosen : "";
    $("#document-rows").replaceChildren(...documents.map((d) => documentRow(d, names)));
    $("#documents-empty").hidden = documents.length > 0;
  } catch (error) {
    $("#documents-error").textContent = error.message;
  }
}

function collectionItem(c) {
  return h("li", { "data-collection": c.name },
    h("span", { text: t("docs.collection_count", { name: c.name, count: c.documents }) }),
    h("button.ghost", { type: "button", text: t("common.delete"), "aria-label": t("docs.delete_collection", { name: c.name }),
      onclick: async () => {
        if (!(await confirmDialog(t("docs.confirm_delete_collection", { name: c.name }), t("common.delete")))) return;
        await act(() => api.del(`${KB}/collections/${encodeURIComponent(c.name)}`));
      } }));
}

function documentRow(doc, names) {
  const inside = doc.collections.map((name) => h("span.tag", {}, name,
    h("button.icon-button", { type: "button", text: "×", "aria-label": t("docs.take_out", { file: doc.filename, name }),
      onclick: () => act(() => api.del(`${KB}/collections/${encodeURIComponent(name)}/documents/${doc.id}`)) })));
  const others = names.filter((n) => !doc.collections.includes(n));
  const add = others.length ? h("select", { "aria-label": t("docs.add_to_collection", { file: doc.filename }),
    onchange: (event) => act(() => api.put(`${KB}/collections/${encodeURIComponent(event.target.value)}/documents/${doc.id}`)) },
    h("option", { value: "", text: t("docs.add_to") }), ...others.map((n) => h("option", { value: n, text: n }))) : null;
  const size = doc.pages ? t("docs.pages", { count: doc.pages }) : t("docs.passages", { count: doc.chunks });
  return h("tr", { "data-document": doc.filename },
    h("td", { text: doc.filename }), h("td.muted", { text: size }),
    h("td", {}, ...inside, add),
    h("td", {}, h("button.ghost", { type: "button", text: t("common.delete"), "aria-label": t("docs.delete_file", { file: doc.filename }),
      onclick: async () => {
        if (!(await confirmDialog(t("docs.confirm_delete_file", { file: doc.filename }), t("common.delete")))) return;
        await act(() => api.del(`${KB}/documents/${doc.id}`));
      } })));
}

async function act(fn) {
  $("#documents-error").textContent = "";
  try {
    await fn();
  } catch (error) {
    $("#documents-error").textContent = error.message;
  }
  await loadDocuments();
}

async function createCollection(event) {
  event.preventDefault();
  const name = $("#collection-name").value.trim();
  if (!name) return;
  await act(async () => {
    await api.post(`${KB}/collections`, { name });
    $("#collection-name").value = "";
  });
}

async function uploadToCollection(event) {
  const files = [...event.target.files];
  event.target.value = "";
  const collection = $("#upload-collection").value;
  const status = $("#documents-progress");
  for (const file of files) {
    const url = `${KB}/documents?filename=${encodeURIComponent(file.name)}${collection ? `&collection=${encodeURIComponent(collection)}` : ""}`;
    status.hidden = false;
    status.textContent = t("docs.uploading_file", { file: file.name });
    try {
      await api.upload(url, file, (f) => {
        status.textContent = f < 1 ? t("docs.uploading_percent", { file: file.name, percent: formatNumber(f, { style: "percent" }) }) : t("docs.reading_file", { file: file.name });
      });
    } catch (error) {
      $("#documents-error").textContent = error.message;
    }
  }
  status.hidden = true;
  await loadDocuments();
}

export function setupKnowledge(getConversation) {
  ensureConversation = getConversation;
  $("#attach").addEventListener("click", () => $("#attach-file").click());
  $("#attach-file").setAttribute("accept", SUPPORTED.join(","));
  $("#attach-file").addEventListener("change", (event) => {
    const files = [...event.target.files];
    event.target.value = "";
    attachFiles(files);
  });
  setupDrop();
  $("#documents-button").addEventListener("click", openDocuments);
  $("#collection-form").addEventListener("submit", createCollection);
  $("#upload-document").addEventListener("click", () => $("#upload-file").click());
  $("#upload-file").setAttribute("accept", SUPPORTED.join(","));
  $("#upload-file").addEventListener("change", uploadToCollection);
  closeOnCancel($("#passage-dialog"));
  on("conversation-opened", loadAttachments);
}
