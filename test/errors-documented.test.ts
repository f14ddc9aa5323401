import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { ERRORS } from "../src/engine/errors.js";

test("every error code is documented in the README with its status", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  for (const [code, { status }] of Object.entries(ERRORS)) {
    const row = readme.split("\n").find((l) => l.startsWith("|") && l.includes(`\`${code}\``));
    assert.ok(row, `${code} has a row in the README's error table`);
    assert.match(row, new RegExp(`\\|\\s*${status}\\s*\\|`), `${code} is documented as ${status}`);
  }
});
