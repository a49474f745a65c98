// What the page knows right now, shared by its modules.

export const state = {
  session: null,          // GET /api/session
  user: null,
  models: [],
  defaultModel: null,
  conversation: null,     // the open conversation (null: a new chat not yet saved)
  messages: [],           // its current branch, root first (each with sibling_ids)
  draftSettings: {},      // settings of a new chat before its first message
  streams: new Map(),     // conversation id -> the answer streaming into it
  preferences: {},        // ui.* user settings
};

// A tiny event bus: "conversations-changed", "conversation-opened".
const listeners = new Map();

export function on(name, fn) {
  if (!listeners.has(name)) listeners.set(name, []);
  listeners.get(name).push(fn);
}

export function emit(name, detail) {
  for (const fn of listeners.get(name) || []) fn(detail);
}

export function currentSettings() {
  return state.conversation ? state.conversation.settings || {} : state.draftSettings;
}
