// The HTTP load generator, run in a worker thread so that the clients' own work (fetch, JSON) does not
// share an event loop with anything under test. Plain JavaScript because worker threads do not get the
// tsx loader. `concurrency` clients, client i talking to urls[i % urls.length], each loop: send `body`
// (POST; GET when body is null),
// wait for the whole answer, again, until the time is up. Only loopback URLs are accepted.
// Input and output shapes: LoadInput and LoadOutput in bench/scale.ts.
import { parentPort, workerData } from "node:worker_threads";

async function run(input, ms, record) {
  for (const url of input.urls) {
    const host = new URL(url).hostname;
    if (host !== "127.0.0.1" && host !== "localhost" && host !== "[::1]") throw new Error(`refusing to load a non-loopback host ${host}`);
  }
  const samplesUs = [];
  const statuses = {};
  const errors = [];
  const end = Date.now() + ms;
  const client = async (i) => {
    const url = input.urls[i % input.urls.length];
    while (Date.now() < end) {
      const t0 = process.hrtime.bigint();
      try {
        const res =
          input.body === null
            ? await fetch(url, { headers: input.headers })
            : await fetch(url, { method: "POST", headers: { ...input.headers, "content-type": "application/json" }, body: input.body });
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
  await Promise.all(Array.from({ length: input.concurrency }, (_, i) => client(i)));
  return { samplesUs, wallMs: Number(process.hrtime.bigint() - start) / 1e6, statuses, errors };
}

if (parentPort) {
  await run(workerData, workerData.warmupMs, false);
  parentPort.postMessage(await run(workerData, workerData.durationMs, true));
}
