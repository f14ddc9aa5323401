import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import { parseAddress } from "../../src/addr/index.js";
import { checkTemplate, forwardName, ptrName, renderTemplate, reverseSpan, reverseZoneOf } from "../../src/dns/names.js";
import { type TsigKey, decode, encodeName, queryMessage, sign, updateMessage, verifyReply } from "../../src/dns/wire.js";

const key: TsigKey = { name: "Test-Key", algorithm: "hmac-sha256", secret: Buffer.alloc(32, 5) };

/** The TSIG variables as RFC 8945 4.3.3 lays them out, written out again here independently. */
function variables(time: number, error = 0): Buffer {
  const t = Buffer.alloc(8);
  t.writeUIntBE(time, 0, 6);
  t.writeUInt16BE(300, 6);
  return Buffer.concat([Buffer.from("\x08test-key\x00", "latin1"), Buffer.from([0, 255, 0, 0, 0, 0]), Buffer.from("\x0bhmac-sha256\x00", "latin1"), t, Buffer.from([error >> 8, error & 255, 0, 0])]);
}

test("names are encoded as labels; decoding follows compression pointers", () => {
  assert.deepEqual(encodeName("a.bc."), Buffer.from([1, 97, 2, 98, 99, 0]));
  assert.throws(() => encodeName(`${"x".repeat(64)}.test`), /63/);
  // a reply to "web.example.test A" whose answer names the question by a pointer (0xc00c)
  const q = queryMessage(7, "web.example.test", 1);
  const reply = Buffer.concat([q, Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1])]);
  reply.writeUInt16BE(0x8400, 2);
  reply.writeUInt16BE(1, 6);
  const d = decode(reply);
  assert.equal(d.id, 7);
  assert.deepEqual(d.answers, [{ name: "web.example.test", type: "A", ttl: 60, data: "192.0.2.1" }]);
});

test("an update deletes each RRset, then adds its records; the TSIG MAC covers message and variables", () => {
  const msg = updateMessage(0x1234, "example.test", [
    { name: "web.example.test", type: "A", ttl: 60, data: ["192.0.2.1"] },
    { name: "old.example.test", type: "AAAA", ttl: 60, data: [] },
  ]);
  assert.equal(msg.readUInt16BE(2), 5 << 11, "opcode UPDATE");
  assert.deepEqual([4, 6, 8, 10].map((o) => msg.readUInt16BE(o)), [1, 0, 3, 0], "one zone, three updates");
  const now = Date.parse("2026-12-01T00:00:00Z");
  const { message, mac } = sign(msg, key, now);
  assert.equal(message.readUInt16BE(10), 1, "the TSIG record is counted");
  const want = createHmac("sha256", key.secret).update(msg).update(variables(now / 1000)).digest();
  assert.deepEqual(mac, want);
  const d = decode(message);
  assert.equal(d.tsig?.algorithm, "hmac-sha256");
  assert.deepEqual(d.tsig?.mac, want);
  assert.equal(d.tsig?.time, now / 1000);
});

test("a reply's MAC is checked against the request's; errors name BADSIG", () => {
  const now = Date.parse("2026-12-01T00:00:00Z");
  const { message, mac } = sign(updateMessage(9, "example.test", []), key, now);
  const body = Buffer.from(message.subarray(0, message.length - 0));
  // the server's reply: the request's header and zone with QR set, signed over the request MAC
  const d0 = decode(body);
  const plain = Buffer.from(body.subarray(0, d0.tsig!.offset));
  plain.writeUInt16BE(0xa800, 2);
  plain.writeUInt16BE(0, 10);
  const time = now / 1000 + 1;
  const len = Buffer.from([0, mac.length]);
  const replyMac = createHmac("sha256", key.secret).update(len).update(mac).update(plain).update(variables(time)).digest();
  const t = Buffer.alloc(8);
  t.writeUIntBE(time, 0, 6);
  t.writeUInt16BE(300, 6);
  const rdata = Buffer.concat([encodeName("hmac-sha256"), t, Buffer.from([0, 32]), replyMac, Buffer.from([0, 9, 0, 0, 0, 0])]);
  const rr = Buffer.concat([encodeName("test-key"), Buffer.from([0, 250, 0, 255, 0, 0, 0, 0, rdata.length >> 8, rdata.length & 255]), rdata]);
  const reply = Buffer.concat([plain, rr]);
  reply.writeUInt16BE(1, 10);
  verifyReply(reply, decode(reply), key, mac);
  const tampered = Buffer.from(reply);
  tampered[13] = tampered[13]! ^ 1;
  assert.throws(() => verifyReply(tampered, decode(tampered), key, mac), /does not verify/);
  const badsig = Buffer.from(reply);
  badsig.writeUInt16BE(16, badsig.length - 4);
  assert.throws(() => verifyReply(badsig, decode(badsig), key, mac), /BADSIG/);
  assert.throws(() => verifyReply(plain, decode(plain), key, mac), /not signed/);
});

test("reverse zones, PTR names, forward names and templates", () => {
  assert.equal(reverseZoneOf("192.0.2.0/24"), "2.0.192.in-addr.arpa");
  assert.equal(reverseZoneOf("192.0.2.128/26"), "128-26.2.0.192.in-addr.arpa");
  assert.equal(reverseZoneOf("2001:db8::/32"), "8.b.d.0.1.0.0.2.ip6.arpa");
  const classless = reverseSpan("128-26.2.0.192.in-addr.arpa")!;
  assert.equal(classless.prefix.length, 26);
  assert.equal(ptrName(parseAddress("192.0.2.130"), classless, "128-26.2.0.192.in-addr.arpa"), "130.128-26.2.0.192.in-addr.arpa");
  const v6 = reverseSpan("8.b.d.0.1.0.0.2.ip6.arpa")!;
  assert.equal(ptrName(parseAddress("2001:db8::1"), v6, "8.b.d.0.1.0.0.2.ip6.arpa"), `1.${"0.".repeat(23)}8.b.d.0.1.0.0.2.ip6.arpa`);
  assert.equal(reverseSpan("example.com"), null);
  assert.throws(() => reverseSpan("256.in-addr.arpa"), /reverse zone of IPv4/);
  assert.equal(forwardName("Web1", "example.com"), "web1.example.com");
  assert.equal(forwardName("db.example.com.", "example.com"), "db.example.com");
  assert.equal(forwardName("bad name", "example.com"), null);
  assert.equal(renderTemplate("host-{a}-{b}-{c}-{d}", parseAddress("10.1.2.3"), null), "host-10-1-2-3");
  assert.equal(renderTemplate("{owner}-{ip}", parseAddress("fd00::5"), "Rack_7"), "rack-7-fd00--5");
  assert.throws(() => checkTemplate("{x}", 4), /unknown placeholder \{x\}/);
  assert.throws(() => checkTemplate("{a}.-x", 4), /not a valid DNS name/);
  assert.equal(checkTemplate("n-{ip}", 6), "n-{ip}");
});
