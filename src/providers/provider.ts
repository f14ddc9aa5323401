/**
 * Upstream providers: where a pool's addresses come from when they are not written by hand. A provider
 * obtains a block (from a cloud's API, or from a pool of another Allot), describes it as a pool range,
 * and releases it when the pool goes. Providers talk to the network, so they run outside any
 * database transaction: obtain first, then create the pool (releasing the block if that fails).
 */

/** What a pool records about its block: the provider's own parameters (never secrets) and the block's id. */
export interface ProviderRecord {
  type: string;
  /** The provider's id for the block, to release it by. */
  blockId: string;
  params: Record<string, string | number>;
}

/** A block as a pool range. */
export interface ObtainedBlock {
  blockId: string;
  start: string;
  end: string;
  prefixLength: number;
  gateway?: string;
}

export interface Provider {
  readonly type: string;
  /** Checks parameters before anything is requested; throws ProviderError saying what is wrong. */
  validate(params: Record<string, unknown>, secrets: Record<string, string>): Record<string, string | number>;
  obtain(params: Record<string, string | number>, secrets: Record<string, string>, size: number, note: string): Promise<ObtainedBlock>;
  release(record: ProviderRecord, secrets: Record<string, string>): Promise<void>;
  /** One line for people: which block from where. */
  describe(record: ProviderRecord): string;
}

/** The provider refused, failed or could not be reached; the message says which, for a person. */
export class ProviderError extends Error {
  constructor(
    message: string,
    /** The request was wrong (400) rather than the provider failing (502). */
    readonly badRequest = false,
  ) {
    super(message);
  }
}

/** fetch with a deadline, turning network failures into a ProviderError that names the provider. */
export async function call(what: string, url: string, init: RequestInit, timeoutMs = 15_000): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs), redirect: "error" });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new ProviderError(`${what} at ${new URL(url).origin} cannot be reached (${cause})`);
  }
}

/** The error text a JSON API sent back, shortened to one line. */
export async function failure(what: string, res: Response): Promise<ProviderError> {
  const text = (await res.text().catch(() => "")).replace(/\s+/g, " ").trim();
  let detail = text;
  try {
    const body = JSON.parse(text) as { errors?: string[]; error?: string; detail?: string };
    detail = body.detail ?? body.errors?.join("; ") ?? body.error ?? text;
  } catch {
    /* not JSON: the text itself */
  }
  return new ProviderError(`${what} answered ${res.status}${detail ? `: ${detail.slice(0, 300)}` : ""}`);
}

export function requireString(params: Record<string, unknown>, key: string, provider: string): string {
  const v = params[key];
  if (typeof v !== "string" || v.trim() === "") throw new ProviderError(`provider ${provider} needs ${key}`, true);
  return v;
}
