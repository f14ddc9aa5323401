/** A small HTTP client for the /v1 API, used by every client command. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}

export const DEFAULT_URL = "http://127.0.0.1:7878";

export class Client {
  constructor(
    readonly baseUrl: string,
    /** The API token, sent as a bearer token. */
    private readonly token?: string,
  ) {}

  async request<T>(method: string, path: string, body?: unknown, query: Record<string, string | number | boolean | undefined> = {}): Promise<T> {
    const url = new URL(path, this.baseUrl.endsWith("/") ? this.baseUrl : `${this.baseUrl}/`);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
        },
        body: body === undefined ? null : JSON.stringify(body),
      });
    } catch (err) {
      const reason = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new ApiError(
        `cannot reach Allot at ${this.baseUrl} (${reason}); start it with 'allot serve' or point ALLOT_URL / --url at a running server`,
        0,
        "unreachable",
      );
    }
    const text = await res.text();
    const data: unknown = text ? safeJson(text) : undefined;
    if (!res.ok) {
      // a problem document (/v1) or a Kubernetes Status (/apis)
      const p = (data ?? {}) as { detail?: string; message?: string; code?: string | number; reason?: string };
      const hint = res.status === 401 && !this.token ? "; pass --token or set ALLOT_TOKEN" : "";
      const code = typeof p.code === "string" ? p.code : (p.reason ?? String(res.status));
      throw new ApiError(`${p.detail ?? p.message ?? `${res.status} ${res.statusText}`}${hint}`, res.status, code);
    }
    return data as T;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text };
  }
}

/** Encodes a path segment (pool names and IPv6 addresses are safe, but ids and odd names need it). */
export const seg = (s: string) => encodeURIComponent(s);
