/** A small HTTP client for the /v1 API, used by every client command. */
import { readFileSync } from "node:fs";
import { Agent, fetch } from "undici";

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    /** The server's problem document, when it sent one. */
    readonly problem: Record<string, unknown> | null = null,
  ) {
    super(message);
  }
}

export const DEFAULT_URL = "http://127.0.0.1:7878";

/** Why a TLS connection was refused, in the words of the fix. */
const CERT_ERRORS = new Set(["DEPTH_ZERO_SELF_SIGNED_CERT", "SELF_SIGNED_CERT_IN_CHAIN", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "CERT_HAS_EXPIRED", "ERR_TLS_CERT_ALTNAME_INVALID"]);

export class Client {
  private readonly dispatcher: Agent | undefined;

  constructor(
    readonly baseUrl: string,
    /** The API token, sent as a bearer token. */
    private readonly token?: string,
    /** A PEM file of certificates to trust (the server's self-signed one, say) besides the system's. */
    private readonly caFile?: string,
    /** Gives up on a request (connecting, waiting and reading the answer) after this long. */
    private readonly timeoutMs?: number,
  ) {
    if (caFile) {
      let ca: string;
      try {
        ca = readFileSync(caFile, "utf8");
      } catch (err) {
        throw new ApiError(`cannot read the CA certificate ${caFile} (--ca-cert / ALLOT_CA_CERT): ${(err as { code?: string }).code ?? (err as Error).message}`, 0, "usage");
      }
      this.dispatcher = new Agent({ connect: { ca } });
    }
  }

  async request<T>(method: string, path: string, body?: unknown, query: Record<string, string | number | boolean | undefined> = {}): Promise<T> {
    return (await this.send<T>(method, path, body, query)).data;
  }

  /** As request, with the answer's status (201 made, 200 already there). */
  async send<T>(method: string, path: string, body?: unknown, query: Record<string, string | number | boolean | undefined> = {}): Promise<{ status: number; data: T }> {
    const url = new URL(path, this.baseUrl.endsWith("/") ? this.baseUrl : `${this.baseUrl}/`);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    let res: Awaited<ReturnType<typeof fetch>>;
    let text: string;
    try {
      res = await fetch(url, {
        ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
        method,
        headers: {
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
        },
        body: body === undefined ? null : JSON.stringify(body),
        ...(this.timeoutMs !== undefined ? { signal: AbortSignal.timeout(this.timeoutMs) } : {}),
      });
      text = await res.text();
    } catch (err) {
      if ((err as Error).name === "TimeoutError") {
        throw new ApiError(`Allot at ${this.baseUrl} did not answer within ${this.timeoutMs! / 1000} s`, 0, "timeout");
      }
      const reason = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      if (CERT_ERRORS.has(reason)) {
        throw new ApiError(
          `Allot at ${this.baseUrl} answered, but its certificate is not trusted (${reason}); pass --ca-cert FILE or set ALLOT_CA_CERT (a server's self-signed certificate is tls.crt in its data directory)${reason === "ERR_TLS_CERT_ALTNAME_INVALID" ? ", and use a host name the certificate names" : ""}`,
          0,
          "untrusted-certificate",
        );
      }
      if (url.protocol === "http:" && ["UND_ERR_SOCKET", "ECONNRESET"].includes(reason)) {
        throw new ApiError(`Allot at ${this.baseUrl} closed the connection (${reason}); if it serves HTTPS (allot serve --tls), use --url https://…`, 0, "unreachable");
      }
      throw new ApiError(
        `cannot reach Allot at ${this.baseUrl} (${reason}); start it with 'allot serve' or point ALLOT_URL / --url at a running server`,
        0,
        "unreachable",
      );
    }
    const data: unknown = text ? safeJson(text) : undefined;
    if (!res.ok) {
      // a problem document (/v1) or a Kubernetes Status (/apis)
      const p = (data ?? {}) as { detail?: string; message?: string; code?: string | number; reason?: string };
      const hint = res.status === 401 && !this.token ? "; pass --token or set ALLOT_TOKEN" : "";
      const code = typeof p.code === "string" ? p.code : (p.reason ?? String(res.status));
      throw new ApiError(`${p.detail ?? p.message ?? `${res.status} ${res.statusText}`}${hint}`, res.status, code, data && typeof data === "object" ? (data as Record<string, unknown>) : null);
    }
    return { status: res.status, data: data as T };
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
