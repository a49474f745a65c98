// The web app's JSON API: every call sends the CSRF token; errors become ApiError.
import { t } from "./i18n.js";

let csrfToken = "";

export function setCsrf(token) { csrfToken = token || ""; }

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || t("api.request_failed", { status }));
    this.status = status;
    this.code = error.code || null;
    this.retryAfter = null;
  }
}

async function failure(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  const error = new ApiError(response.status, body);
  error.retryAfter = response.headers.get("Retry-After");
  return error;
}

function options(method, body, signal) {
  const headers = { "X-CSRF-Token": csrfToken };
  let payload;
  if (typeof body === "string") {
    headers["Content-Type"] = "application/json";
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  return { method, headers, body: payload, signal, credentials: "same-origin" };
}

export async function request(method, path, body) {
  const response = await fetch(path, options(method, body));
  if (!response.ok) throw await failure(response);
  return response.json();
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body ?? {});
export const patch = (path, body) => request("PATCH", path, body);
export const put = (path, body) => request("PUT", path, body);
export const del = (path) => request("DELETE", path);

// POST and read the answer's server-sent events: onEvent(name, data) for each.
export async function stream(path, body, onEvent, signal) {
  const response = await fetch(path, options("POST", body, signal));
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      dispatch(block, onEvent);
    }
  }
}

function dispatch(block, onEvent) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (data.length) onEvent(name, JSON.parse(data.join("\n")));
}

// Upload a file as the raw request body (the knowledge API's way), reporting progress as a
// fraction 0..1 while it is sent. Resolves to the JSON answer; failures become ApiError.
export function upload(path, file, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("X-CSRF-Token", csrfToken);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(new ApiError(xhr.status, xhr.response));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, {
      error: { message: t("api.upload_failed") } })));
    xhr.send(file);
  });
}
