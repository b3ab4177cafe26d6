// The JSON API as the pages use it: the session cookie, the CSRF token from
// its cookie on unsafe methods, and docs/api.md's error shape turned into text a
// person can act on.

export interface Instance {
  id: string;
  hostname: string;
  ip: string | null;
  image: string;
  state: "provisioning" | "running" | "stopped" | "failed";
  terminal: string;
  ports: { port: number; url: string }[];
  /** What it uses, sampled every few seconds; null until sampled or when it does not run. */
  stats?: InstanceStats | null;
  reason?: string;
}

export interface InstanceStats {
  /** CPU time over wall time between the last two samples, % of one CPU (null after the first). */
  cpu_percent: number | null;
  memory_bytes: number;
  memory_limit_bytes: number;
}

export interface Session {
  id: string;
  state: "starting" | "running" | "expired" | "ended" | "failed";
  created_at: string;
  expires_at: string;
  instances: Instance[];
  reason?: string;
  extensions?: number;
  template?: string | null;
  setup?: { state: "pending" | "running" | "done" | "failed"; message: string; roles: Record<string, string> } | null;
}

export const LIVE_STATES = new Set(["starting", "running"]);

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfter: number | null,
  ) {
    super(message);
  }

  /** One sentence for the page: the server's message plus what to do next. */
  get text(): string {
    switch (this.status) {
      case 429:
        return `Too many requests right now. Try again in ${wait(this.retryAfter ?? 10)}.`;
      case 503:
        return `${this.message}${this.retryAfter ? ` Try again in ${wait(this.retryAfter)}.` : ""}`;
      case 401:
        return "You are signed out. Reload the page to continue.";
      case 0:
        return "The playground did not answer. Check your connection and try again.";
      default:
        return this.message;
    }
  }
}

function wait(seconds: number): string {
  if (seconds < 90) return `${seconds} s`;
  return `${Math.ceil(seconds / 60)} min`;
}

export function csrfToken(): string {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/** The difference between the server's clock and ours (ms), from Date headers. */
export let serverClockOffset = 0;

export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "The playground did not answer.", null);
  }
  const date = Date.parse(response.headers.get("Date") ?? "");
  if (!Number.isNaN(date)) serverClockOffset = date - Date.now();
  if (response.status === 204) return undefined as T;
  let payload: unknown = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const error = (payload as { error?: { code?: string; message?: string } } | null)?.error;
    const retry = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
    throw new ApiError(
      response.status,
      error?.code ?? "http_" + response.status,
      error?.message ?? `The playground answered ${response.status} ${response.statusText}.`,
      Number.isNaN(retry) ? null : retry,
    );
  }
  return payload as T;
}

export function describe(error: unknown): string {
  if (error instanceof ApiError) return error.text;
  return error instanceof Error ? error.message : String(error);
}

/** Start a session and go to its page; errors are for the caller to show. */
export async function startSession(body: Record<string, string> = {}): Promise<never> {
  const session = await api<Session>("POST", "/api/sessions/", body);
  window.location.assign(`/sessions/${encodeURIComponent(session.id)}/`);
  return new Promise<never>(() => {});
}
