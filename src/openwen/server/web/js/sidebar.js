// The sidebar: conversation list, full-text search, per-conversation menu, import.

import * as api from "./api.js";
import { $, h, icon, toast, confirmDialog } from "./dom.js";
import { newChat, openConversation } from "./chat.js";
import { state, on } from "./state.js";
import { t } from "./i18n.js";

let conversations = [];
let searchResults = null;  // null: not searching
let searchTimer = null;
let searchSeq = 0;

export async function refreshList() {
  try {
    const data = await api.get("/api/conversations");
    conversations = data.conversations;
  } catch (error) {
    toast(error.message, "error");
  }
  renderList();
}

function activeId() {
  return state.conversation ? state.conversation.id : null;
}

function renderList() {
  const list = $("#conversation-list");
  const searching = searchResults !== null;
  const items = searching ? searchResults : conversations;
  $("#list-heading").hidden = !searching;
  $("#list-heading").textContent = searching ? t("sidebar.results", { count: items.length }) : "";
  $("#list-empty").hidden = items.length > 0;
  $("#list-empty").textContent = searching ? t("sidebar.nothing_found") : t("sidebar.no_conversations");
  list.replaceChildren(...items.map((item) => (searching ? resultItem(item) : conversationItem(item))));
}

function conversationItem(c) {
  const li = h("li.conversation-item", { "data-id": c.id });
  if (c.id === activeId()) li.classList.add("active");
  const open = h("button.open", { type: "button", onclick: () => choose(c.id),
    "aria-current": c.id === activeId() ? "page" : null },
    h("span.title", {}, c.pinned ? h("span.pin", { "aria-label": t("sidebar.pinned"), text: "●" }) : null, c.title));
  const more = h("button.icon-button.more", { type: "button", "aria-label": t("sidebar.more_actions", { title: c.title }),
    "aria-haspopup": "menu", "aria-expanded": "false", onclick: (event) => openMenu(event.currentTarget, c) },
    icon("more"));
  li.append(open, more);
  return li;
}

function resultItem(hit) {
  const li = h("li.conversation-item.result", { "data-id": hit.conversation_id });
  const snippet = h("span.snippet");
  let at = 0;
  for (const [start, end] of hit.highlights) {
    snippet.append(hit.snippet.slice(at, start), h("mark", { text: hit.snippet.slice(start, end) }));
    at = end;
  }
  snippet.append(hit.snippet.slice(at));
  li.append(h("button.open", { type: "button", onclick: () => choose(hit.conversation_id) },
    h("span.title", { text: hit.title }), snippet));
  return li;
}

function choose(id) {
  closeSidebar();
  if (id !== activeId()) openConversation(id);
}

// -- search ------------------------------------------------------------------------------------

function onSearchInput() {
  clearTimeout(searchTimer);
  const query = $("#search").value.trim();
  if (!query) {
    searchResults = null;
    renderList();
    return;
  }
  searchTimer = setTimeout(() => runSearch(query), 200);
}

async function runSearch(query) {
  const seq = ++searchSeq;
  try {
    const data = await api.get(`/api/search?q=${encodeURIComponent(query)}`);
    if (seq !== searchSeq) return;
    searchResults = data.results;
    renderList();
  } catch (error) {
    toast(error.message, "error");
  }
}

export function focusSearch() {
  openSidebar();
  $("#search").focus();
  $("#search").select();
}

// -- the "..." menu ----------------------------------------------------------------------------

function openMenu(button, c) {
  const menu = $("#menu");
  const exportLink = (format, label) => h("button", { type: "button", role: "menuitem", text: label,
    onclick: () => { closeMenu(); download(c.id, format); } });
  menu.replaceChildren(
    h("button", { type: "button", role: "menuitem", text: c.pinned ? t("sidebar.unpin") : t("sidebar.pin"),
      onclick: () => { closeMenu(); change(c.id, { pinned: !c.pinned }); } }),
    h("button", { type: "button", role: "menuitem", text: t("sidebar.rename"), onclick: () => { closeMenu(); rename(c); } }),
    exportLink("markdown", t("sidebar.export_markdown")),
    exportLink("json", t("sidebar.export_json")),
    h("button.danger-text", { type: "button", role: "menuitem", text: t("common.delete"),
      onclick: () => { closeMenu(); remove(c); } }));
  const box = button.getBoundingClientRect();
  menu.hidden = false;
  const top = Math.min(box.bottom + 4, window.innerHeight - menu.offsetHeight - 8);
  menu.style.top = `${top}px`;
  menu.style.left = `${Math.max(8, Math.min(box.left, window.innerWidth - menu.offsetWidth - 8))}px`;
  button.setAttribute("aria-expanded", "true");
  menu.dataset.owner = c.id;
  menu.querySelector("button").focus();
}

export function closeMenu() {
  const menu = $("#menu");
  if (menu.hidden) return;
  menu.hidden = true;
  const owner = document.querySelector(`.conversation-item[data-id="${menu.dataset.owner}"] .more`);
  if (owner) {
    owner.setAttribute("aria-expanded", "false");
    owner.focus();
  }
}

function download(id, format) {
  const link = h("a", { href: `/api/conversations/${id}/export?format=${format}`, download: "" });
  document.body.append(link);
  link.click();
  link.remove();
}

async function change(id, body) {
  try {
    const data = await api.patch(`/api/conversations/${id}`, body);
    if (state.conversation && state.conversation.id === id) {
      state.conversation = data.conversation;
      $("#chat-title").textContent = data.conversation.title;
    }
    await refreshList();
  } catch (error) {
    toast(error.message, "error");
  }
}

function rename(c) {
  const li = $(`.conversation-item[data-id="${c.id}"]`);
  if (!li) return;
  const input = h("input", { value: c.title, "aria-label": t("sidebar.new_title"), maxlength: "500" });
  let done = false;
  const finish = (save) => {
    if (done) return;
    done = true;
    if (save && input.value.trim() && input.value !== c.title) change(c.id, { title: input.value });
    else renderList();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") finish(true);
    if (event.key === "Escape") { event.stopPropagation(); finish(false); }
  });
  input.addEventListener("blur", () => finish(true));
  li.replaceChildren(input);
  input.focus();
  input.select();
}

async function remove(c) {
  if (!(await confirmDialog(t("sidebar.confirm_delete", { title: c.title })))) return;
  try {
    await api.del(`/api/conversations/${c.id}`);
    if (activeId() === c.id) newChat();
    await refreshList();
    toast(t("sidebar.deleted"));
  } catch (error) {
    toast(error.message, "error");
  }
}

async function importFile(file) {
  try {
    const data = await api.request("POST", "/api/conversations/import", await file.text());
    await refreshList();
    openConversation(data.conversation.id);
    toast(t("sidebar.imported"));
  } catch (error) {
    toast(error.message, "error");
  }
}

// -- phone-sized screens: the sidebar as a drawer ----------------------------------------------

export function openSidebar() {
  $("#sidebar").classList.add("open");
  $("#backdrop").hidden = !window.matchMedia("(max-width: 760px)").matches;
  $("#open-sidebar").setAttribute("aria-expanded", "true");
}

export function closeSidebar() {
  $("#sidebar").classList.remove("open");
  $("#backdrop").hidden = true;
  $("#open-sidebar").setAttribute("aria-expanded", "false");
}

export function setupSidebar() {
  $("#search").addEventListener("input", onSearchInput);
  $("#search").addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    event.stopPropagation();
    if ($("#search").value) {
      $("#search").value = "";
      onSearchInput();
    } else {
      closeSidebar();
      $("#search").blur();
    }
  });
  $("#new-chat").addEventListener("click", () => { closeSidebar(); newChat(); });
  $("#open-sidebar").addEventListener("click", openSidebar);
  $("#close-sidebar").addEventListener("click", closeSidebar);
  $("#backdrop").addEventListener("click", closeSidebar);
  $("#import-button").addEventListener("click", () => $("#import-file").click());
  $("#import-file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    event.target.value = "";
    if (file) importFile(file);
  });
  document.addEventListener("click", (event) => {
    if (!$("#menu").hidden && !event.target.closest("#menu, .more")) closeMenu();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("#menu").hidden) { event.stopPropagation(); closeMenu(); }
  }, true);
  on("conversations-changed", refreshList);
  on("conversation-opened", renderList);
}
