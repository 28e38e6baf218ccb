// api(): the one door to the REST API. It adds the credentials, turns every failure into an
// ApiError carrying the server's sentence, and when the gateway or xrayd goes away it says
// "reconnecting", waits for /api/ping to answer again, and retries reads. Writes are never
// repeated behind the operator's back: they fail with a sentence and the form keeps its input.
import { t } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, code, message, body = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** Events: "unauthorized"; "connection" with detail "lost" or "back". */
export const bus = new EventTarget();

const TOKEN_KEY = "xr.token";

/** Credentials: a bearer token kept for this tab, or a cookie session with its CSRF token. */
export const auth = {
  csrf: null,
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  useToken(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    this.csrf = null;
  },
  useSession(csrf) {
    sessionStorage.removeItem(TOKEN_KEY);
    this.csrf = csrf;
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    this.csrf = null;
  },
};

let outage = null; // a promise that settles when the server answers again

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function serverIsBack() {
  try {
    const answer = await fetch("/api/ping", { cache: "no-store" });
    return answer.ok && (await answer.json()).daemon?.ok === true;
  } catch {
    return false;
  }
}

function connectionLost() {
  if (!outage) {
    bus.dispatchEvent(new CustomEvent("connection", { detail: "lost" }));
    outage = (async () => {
      for (let delay = 500; !(await serverIsBack()); delay = Math.min(delay * 2, 4000)) await sleep(delay);
      outage = null;
      bus.dispatchEvent(new CustomEvent("connection", { detail: "back" }));
    })();
  }
  return outage;
}

function untilBack(signal) {
  const back = connectionLost();
  if (!signal) return back;
  return new Promise((resolve, reject) => {
    const stop = () => reject(new DOMException("aborted", "AbortError"));
    if (signal.aborted) stop();
    signal.addEventListener("abort", stop, { once: true });
    back.then(resolve);
  });
}

function urlFor(path, query) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, String(value));
  }
  return url;
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/** Call METHOD path; resolve with the JSON body or reject with an ApiError. */
export async function api(method, path, { query, body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  if (auth.csrf && method !== "GET") headers["X-CSRF-Token"] = auth.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const init = { method, headers, signal, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) init.body = JSON.stringify(body);
  const reads = method === "GET";
  for (;;) {
    let response;
    try {
      response = await fetch(urlFor(path, query), init);
    } catch (err) {
      if (signal?.aborted) throw err;
      if (!reads) {
        connectionLost();
        throw new ApiError(0, "network", t("error.network_write"));
      }
      await untilBack(signal);
      continue;
    }
    const type = response.headers.get("Content-Type") || "";
    // A raw answer (the QR code's SVG) comes back as { body, type }; everything else is JSON.
    const data = type.includes("json") || !response.ok ? await readJson(response) : { body: await response.text(), type };
    if (response.ok) return data;
    const away = response.status === 502 || data?.error === "daemon_unavailable";
    if (away && reads) {
      await untilBack(signal);
      continue;
    }
    if (away) connectionLost();
    if (response.status === 401 && !path.startsWith("/api/auth/")) {
      bus.dispatchEvent(new CustomEvent("unauthorized"));
    }
    throw new ApiError(
      response.status,
      data?.error || "http_error",
      data?.message || t("error.status", { status: response.status }),
      data,
    );
  }
}

export const get = (path, query, signal) => api("GET", path, { query, signal });
export const post = (path, body) => api("POST", path, { body: body ?? {} });
export const del = (path) => api("DELETE", path);
