/**
 * The webhook delivery loop of one server: lease a hook with events waiting, POST them (signed), and
 * record the outcome. It runs beside request handling and never inside a change's transaction.
 */
import { createHmac } from "node:crypto";
import type { FastifyBaseLogger } from "fastify";
import type { Engine } from "../engine/engine.js";
import { VERSION } from "../api/app.js";

/** Per attempt: a receiver slower than this counts as a failure and is retried later. */
const TIMEOUT_MS = 10_000;

export interface WebhookPayload {
  webhook: string;
  events: unknown[];
}

/** The signature header value: HMAC-SHA256 of the exact body bytes under the hook's secret. */
export function signature(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`;
}

/** Delivers until no hook has events due; returns how many deliveries were attempted. */
export async function deliverDue(engine: Engine, log: FastifyBaseLogger): Promise<number> {
  let attempts = 0;
  for (;;) {
    const d = await engine.leaseWebhookDelivery();
    if (!d) return attempts;
    attempts++;
    if (d.events.length === 0) {
      // only entries outside the hook's spaces: nothing to send, they just leave its outbox
      await engine.settleWebhookDelivery(d, { ok: true });
      continue;
    }
    const body = JSON.stringify({ webhook: d.hook.name, events: d.events } satisfies WebhookPayload);
    let outcome: { ok: true } | { ok: false; error: string };
    try {
      const res = await fetch(d.hook.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": `allot/${VERSION}`,
          "x-allot-signature": signature(d.secretText, body),
          "x-allot-delivery": `${d.events[0]!.seq}-${d.events[d.events.length - 1]!.seq}`,
        },
        body,
        signal: AbortSignal.timeout(TIMEOUT_MS),
        redirect: "manual",
      });
      await res.arrayBuffer().catch(() => undefined);
      outcome = res.ok ? { ok: true } : { ok: false, error: `HTTP ${res.status}` };
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      outcome = { ok: false, error: cause ?? (err as Error).message };
    }
    await engine.settleWebhookDelivery(d, outcome);
    if (!outcome.ok) {
      log.warn({ webhook: d.hook.name, error: outcome.error, failures: d.hook.failures + 1 }, "webhook delivery failed; will retry with backoff");
      // that hook now backs off; the others still get their turn
    }
  }
}

/**
 * Runs deliverDue whenever a change is committed (by any server: the change feed), and every
 * `retryMs` besides, for deliveries that wait out a failed one's backoff. Returns what stops it.
 */
export function startWebhookLoop(engine: Engine, log: FastifyBaseLogger, retryMs = 1000): () => void {
  const stop = new AbortController();
  void (async () => {
    let seen = engine.changes.version;
    while (!stop.signal.aborted) {
      try {
        await deliverDue(engine, log);
      } catch (err) {
        log.error({ err }, "webhook delivery loop failed");
      }
      seen = await engine.changes.wait(seen, retryMs, stop.signal);
    }
  })();
  return () => stop.abort();
}
