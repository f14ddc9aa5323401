// The HTTP load generator, run in a worker thread so that the clients' own work (fetch, JSON) does not
// share an event loop with the server under test. Plain JavaScript because worker threads do not get
// the tsx loader. `concurrency` clients each loop: take the next request number, POST one allocation,
// wait for the whole answer, until `total` have been sent. Only a loopback URL is accepted, and the
// loop is bounded by `total`. Input and output shapes: LoadInput and LoadOutput in bench/run.ts.
import { parentPort, workerData } from "node:worker_threads";

async function run(input, count, record) {
  const host = new URL(input.url).hostname;
  if (host !== "127.0.0.1" && host !== "localhost" && host !== "[::1]") throw new Error(`refusing to load a non-loopback host ${host}`);
  const samplesUs = [];
  const statuses = {};
  const errors = [];
  let next = 0;
  const client = async () => {
    while (next < count) {
      next++;
      const t0 = process.hrtime.bigint();
      try {
        const res = await fetch(input.url, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
        await res.arrayBuffer();
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      } catch (err) {
        if (errors.length < 5) errors.push(String(err));
        statuses.error = (statuses.error ?? 0) + 1;
      }
      if (record) samplesUs.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  };
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: input.concurrency }, client));
  return { samplesUs, wallMs: Number(process.hrtime.bigint() - start) / 1e6, statuses, errors };
}

if (parentPort) {
  await run(workerData, workerData.warmup, false);
  parentPort.postMessage(await run(workerData, workerData.total, true));
}
