/**
 * Secret attributes (a cloud provider's API token on a pool, a webhook's signing secret) are sealed
 * with AES-256-GCM under one key held outside the database: a stolen database or export does not
 * reveal them. Read APIs show only a hint (the last four characters) kept beside the sealed value.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";
import { AllotError } from "./errors.js";

export const SECRET_KEY_BYTES = 32;

/** What a pool or webhook stores per secret: the sealed value, and a hint that can be shown. */
export interface SealedSecret {
  sealed: string;
  hint: string;
}

export class SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== SECRET_KEY_BYTES) throw new Error(`a secret key is ${SECRET_KEY_BYTES} bytes, not ${key.length}`);
  }

  /** A stable, non-reversible fingerprint, stored in the database to catch servers with different keys. */
  fingerprint(): string {
    return createHmac("sha256", this.key).update("allot secret key fingerprint v1").digest("hex").slice(0, 32);
  }

  /** A MAC of `data` for one purpose (a Keystone-style token, say), so servers sharing the key can check it. */
  sign(purpose: string, data: string): string {
    return createHmac("sha256", this.key).update(`${purpose}\n${data}`).digest("base64url");
  }

  seal(plain: string): SealedSecret {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv);
    const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
    return { sealed: `v1.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64")}`, hint: hintOf(plain) };
  }

  open(s: SealedSecret): string {
    const raw = Buffer.from(s.sealed.replace(/^v1\./, ""), "base64");
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.key, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
    } catch {
      throw new AllotError("secrets-unavailable", "a stored secret cannot be decrypted with this server's key (ALLOT_SECRET_KEY or secret.key in the data directory); use the key it was stored with");
    }
  }
}

/** The last four characters of a long secret, nothing of a short one. */
export function hintOf(plain: string): string {
  return plain.length >= 12 ? `…${plain.slice(-4)}` : "…";
}

/** Parses ALLOT_SECRET_KEY: 32 bytes as 64 hex digits or as base64. */
export function parseSecretKey(text: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, "hex") : Buffer.from(t, "base64");
  if (key.length !== SECRET_KEY_BYTES) {
    throw new Error(`ALLOT_SECRET_KEY must be ${SECRET_KEY_BYTES} bytes, written as 64 hex digits or base64 (make one with: openssl rand -hex 32)`);
  }
  return key;
}

export const newSecretKey = () => randomBytes(SECRET_KEY_BYTES);
