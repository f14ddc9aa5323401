// One writer of the plain-insert limit measurement on SQLite, run in a worker thread so that N writers
// hold N connections and really contend for the database's write lock, as N processes would. Plain
// JavaScript because worker threads do not get the tsx loader. Each writer runs single-row INSERT
// transactions (autocommit) from `startAt` until `endAt` (Date.now() times) and reports each latency.
import Database from "better-sqlite3";
import { parentPort, workerData } from "node:worker_threads";

const { file, startAt, endAt } = workerData;
const db = new Database(file);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.pragma("busy_timeout = 10000");
const insert = db.prepare("INSERT INTO plain (payload) VALUES (?)");
const samplesUs = [];
let errors = 0;
while (Date.now() < startAt);
while (Date.now() < endAt) {
  const t0 = process.hrtime.bigint();
  try {
    insert.run("allot-bench-row");
    samplesUs.push(Number(process.hrtime.bigint() - t0) / 1000);
  } catch {
    errors++;
  }
}
db.close();
parentPort.postMessage({ samplesUs, errors });
