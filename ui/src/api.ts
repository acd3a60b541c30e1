// Talking to the controller: the token lives in sessionStorage (gone with the tab, never in a cookie, so no CSRF)
// and travels only as an Authorization header. It is never put into the page.

const TOKEN_KEY = "zeromesh.console.token";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t: string): void {
  sessionStorage.setItem(TOKEN_KEY, t);
}

export function clearToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

// Called on any 401: main.ts shows the login screen.
let onUnauthorized: (reason: string) => void = () => {};
export function setUnauthorizedHandler(f: (reason: string) => void): void {
  onUnauthorized = f;
}

async function request<T>(method: "GET" | "POST", path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const t = token();
  if (t) headers["Authorization"] = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
      credentials: "omit",
    });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new ApiError(0, "the controller cannot be reached (network error)");
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    if (res.ok) throw new ApiError(res.status, `${method} ${path}: the answer is not JSON`);
  }
  if (!res.ok) {
    const msg =
      json && typeof json === "object" && typeof (json as { error?: unknown }).error === "string"
        ? (json as { error: string }).error
        : `${res.status} ${res.statusText}`;
    if (res.status === 401) {
      clearToken();
      onUnauthorized(msg);
    }
    throw new ApiError(res.status, msg);
  }
  return json as T;
}

export function get<T>(path: string, signal?: AbortSignal): Promise<T> {
  return request<T>("GET", path, undefined, signal);
}

export function post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  return request<T>("POST", path, body, signal);
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.status ? `${e.message} (HTTP ${e.status})` : e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
