import assert from "node:assert/strict";
import { test } from "node:test";
import { ctx, tempEngine } from "../helpers.js";

/**
 * Two servers woken by the same change both try to lease the hook; one may lease it just after the
 * other delivered everything, and find no events left. Settling that empty lease must end it, so the
 * hook's next events go out at once rather than after the lease runs out (a minute).
 */
test("a lease that finds its events already delivered by another server ends cleanly, and the next change goes out", async () => {
  const { engine, store, cleanup } = await tempEngine();
  try {
    await engine.createWebhook({ name: "audit", url: "http://127.0.0.1:9/" }, ctx);
    await engine.createPool({ name: "p", cidr: "10.90.0.0/24" }, ctx);
    const leased = await engine.leaseWebhookDelivery();
    assert.ok(leased && leased.seqs.length > 0);
    // another server delivered these meanwhile: this lease's events are gone
    await store.transaction((sql) => sql.run("DELETE FROM webhook_outbox"));
    await engine.settleWebhookDelivery({ ...leased, seqs: [], events: [] }, { ok: true });
    await engine.allocate({ pool: "p" }, {}, ctx);
    const next = await engine.leaseWebhookDelivery();
    assert.ok(next, "the hook is due again at once");
    assert.deepEqual(next.events.map((e) => e.action), ["allocate"]);
  } finally {
    await cleanup();
  }
});
