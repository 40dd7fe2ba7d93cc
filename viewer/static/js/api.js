// Shared helpers: where the archive is, DICOM JSON values, small DOM utilities.
// The API base is this page's origin, or another origin given as ?api=https://host:port
// (the archive answers cross-origin requests; CORS is configured server-side).

const params = new URLSearchParams(location.search);

export const API = (params.get("api") || location.origin).replace(/\/+$/, "");

/** A link to another viewer page that keeps the ?api= choice. */
export function pageUrl(page, query = {}) {
  const search = new URLSearchParams(query);
  if (params.get("api")) search.set("api", params.get("api"));
  const text = search.toString();
  return text ? `${page}?${text}` : page;
}

/** An error carrying the HTTP status and the server's JSON reason when there is one. */
export class HttpError extends Error {
  constructor(status, reason) {
    super(reason ? `HTTP ${status}: ${reason}` : `HTTP ${status}`);
    this.status = status;
    this.reason = reason;
  }
}

async function failure(response) {
  let reason = "";
  try {
    const body = await response.json();
    reason = body.error || body.detail || JSON.stringify(body);
  } catch {
    reason = response.statusText;
  }
  return new HttpError(response.status, reason);
}

/** GET JSON from the archive (path relative to the API base, or an absolute URL). */
export async function getJson(path, accept = "application/json") {
  const url = path.startsWith("http") ? path : API + path;
  const response = await fetch(url, { headers: { Accept: accept } });
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return [];
  return response.json();
}

/** First value of a DICOM JSON attribute (PS3.18 F.2), names as their Alphabetic text. */
export function value(item, tag, fallback = "") {
  const element = item && item[tag];
  const values = element && element.Value;
  if (!values || values.length === 0) return fallback;
  const first = values[0];
  if (first && typeof first === "object" && "Alphabetic" in first) return first.Alphabetic;
  return first;
}

/** All values of a DICOM JSON attribute. */
export function values(item, tag) {
  const element = item && item[tag];
  return (element && element.Value) || [];
}

/** A DICOM person name (Family^Given^Middle^Prefix^Suffix) as "Family, Given Middle". */
export function formatName(text) {
  const [family = "", given = "", middle = "", prefix = "", suffix = ""] =
    String(text || "").split("^");
  const rest = [prefix, given, middle, suffix].filter(Boolean).join(" ");
  return family && rest ? `${family}, ${rest}` : family || rest;
}

/** 20240131 → 2024-01-31. */
export function formatDate(text) {
  const s = String(text || "");
  return s.length === 8 ? `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6)}` : s;
}

/** DOM element shorthand: el("td", {className: "x"}, "text", child). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, val] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, val);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), val);
    else node[key] = val;
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An <img> that removes itself (or its wrapper) when the image does not exist. */
export function optionalImage(src, alt, className, removeTarget = null) {
  const img = el("img", { src, alt, className, loading: "lazy", decoding: "async" });
  img.addEventListener("error", () => (removeTarget || img).remove());
  return img;
}
