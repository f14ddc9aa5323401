import assert from "node:assert/strict";
import { test } from "node:test";
import { canonicalAddress, formatAddress, parseAddress, parsePrefix, formatPrefix } from "../src/addr/index.js";

test("any valid text form is accepted and the RFC 5952 canonical form comes back", () => {
  const cases: [string, string][] = [
    ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
    ["2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
    ["::FFFF:c000:0201", "::ffff:192.0.2.1"],
    [" 10.0.0.1 ", "10.0.0.1"],
    ["255.255.255.255", "255.255.255.255"],
  ];
  for (const [input, want] of cases) assert.equal(canonicalAddress(input), want, input);
});

test("ambiguous or invalid forms are refused with a message naming the input", () => {
  for (const bad of ["10.1", "010.0.0.1", "256.1.1.1", "1.2.3", "fe80::1%eth0", "2001:db8:::1", "", "abc", "1.2.3.4.5", "::g"]) {
    assert.throws(() => parseAddress(bad), (err: Error) => err.message.includes(JSON.stringify(bad)), bad);
  }
});

test("full 128-bit arithmetic round-trips", () => {
  const max = parseAddress("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  assert.equal(max.value, (1n << 128n) - 1n);
  assert.equal(formatAddress({ family: 6, value: max.value - 1n }), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
  assert.equal(formatAddress({ family: 4, value: 0xc0a80101n }), "192.168.1.1");
});

test("prefixes must have zero host bits, and the error suggests the right one", () => {
  assert.equal(formatPrefix(parsePrefix("2001:DB8::/32")), "2001:db8::/32");
  assert.throws(() => parsePrefix("10.0.0.1/24"), /did you mean 10\.0\.0\.0\/24/);
  assert.throws(() => parsePrefix("10.0.0.0/33"), /prefix length for IPv4/);
  assert.throws(() => parsePrefix("2001:db8::/129"), /prefix length for IPv6/);
  assert.throws(() => parsePrefix("10.0.0.0"), /CIDR prefix/);
});
