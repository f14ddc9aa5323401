/**
 * A zone served by a DNS server that takes RFC 2136 dynamic updates signed with TSIG (BIND 9's named,
 * PowerDNS with dnsupdate=yes, Knot). Everything goes over TCP: updates of a whole batch exceed 512
 * bytes, and some servers drop large UDP updates without a word.
 */
import { connect } from "node:net";
import type { DnsBackend, RrKey } from "./backend.js";
import { type Decoded, type Rr, type RrsetChange, type TsigKey, TYPE, decode, newId, queryMessage, rcodeText, sign, typeCode, updateMessage, verifyReply } from "./wire.js";

const TIMEOUT_MS = 10_000;
/** Update records per message: well under 64 KiB with the longest names. */
const PER_MESSAGE = 200;

/**
 * Sends DNS messages on one TCP connection and hands each reply to `onReply` until it says it is done
 * (after the last expected reply).
 */
export function tcpExchange(host: string, port: number, messages: Buffer[], onReply: (reply: Buffer) => boolean, timeoutMs = TIMEOUT_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let pending = Buffer.alloc(0);
    let finished = false;
    const finish = (err?: Error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => finish(new Error(`no answer from ${host}:${port} within ${timeoutMs / 1000} s`)), timeoutMs);
    socket.on("connect", () => {
      for (const m of messages) {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(m.length);
        socket.write(Buffer.concat([len, m]));
      }
    });
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) break;
        const msg = pending.subarray(2, 2 + len);
        pending = pending.subarray(2 + len);
        try {
          if (onReply(msg)) return finish();
        } catch (err) {
          return finish(err as Error);
        }
      }
    });
    socket.on("error", (err: Error & { code?: string }) => finish(new Error(`${host}:${port}: ${err.code ?? err.message}`)));
    socket.on("close", () => finish(new Error(`${host}:${port} closed the connection before answering`)));
  });
}

export function splitServer(server: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(server) ?? /^([^:]+)(?::(\d+))?$/.exec(server);
  if (!m) throw new Error(`server ${server} is not host:port`);
  return { host: m[1]!, port: m[2] ? Number(m[2]) : 53 };
}

export class Rfc2136Backend implements DnsBackend {
  private readonly host: string;
  private readonly port: number;

  constructor(
    private readonly zone: string,
    server: string,
    private readonly key: TsigKey,
  ) {
    ({ host: this.host, port: this.port } = splitServer(server));
  }

  async apply(changes: readonly RrsetChange[]): Promise<void> {
    for (let i = 0; i < changes.length; i += PER_MESSAGE) await this.send(changes.slice(i, i + PER_MESSAGE));
  }

  private async send(changes: readonly RrsetChange[]): Promise<void> {
    const { message, mac } = sign(updateMessage(newId(), this.zone, changes), this.key);
    let reply: { buf: Buffer; d: Decoded } | null = null;
    await tcpExchange(this.host, this.port, [message], (buf) => {
      reply = { buf, d: decode(buf) };
      return true;
    });
    const r = reply as { buf: Buffer; d: Decoded } | null;
    if (!r) throw new Error("no reply");
    if (r.d.rcode !== 0 || (r.d.tsig && r.d.tsig.error !== 0)) {
      const hint = r.d.rcode === 9 ? ": the server does not accept this TSIG key (name, algorithm or secret)" : r.d.rcode === 5 ? ": the server refuses updates from this key" : r.d.rcode === 10 ? `: a name is outside zone ${this.zone}` : "";
      throw new Error(`update of ${this.zone} refused: ${rcodeText(r.d)}${hint}`);
    }
    verifyReply(r.buf, r.d, this.key, mac);
  }

  /** Plain queries for each name and type, pipelined on one connection per thousand (ids are 16 bits). */
  async lookup(keys: readonly RrKey[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (let i = 0; i < keys.length; i += 1000) for (const [k, v] of await this.lookupSome(keys.slice(i, i + 1000))) out.set(k, v);
    return out;
  }

  private async lookupSome(keys: readonly RrKey[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    if (keys.length === 0) return out;
    const byId = new Map<number, RrKey>();
    const messages: Buffer[] = [];
    for (const [i, k] of keys.entries()) {
      byId.set(i, k);
      messages.push(queryMessage(i, k.name, typeCode(k.type)));
    }
    let left = keys.length;
    await tcpExchange(this.host, this.port, messages, (buf) => {
      const d = decode(buf);
      const k = byId.get(d.id);
      if (!k) return false;
      if (d.rcode !== 0 && d.rcode !== 3) throw new Error(`query for ${k.name} ${k.type} failed: ${rcodeText(d)}`);
      out.set(`${k.name} ${k.type}`, d.answers.filter((a) => a.name === k.name && a.type === k.type).map((a) => a.data));
      return --left === 0;
    });
    return out;
  }

  /** The zone's records by a TSIG-signed AXFR (the server must allow transfers to the key). */
  async list(): Promise<Rr[]> {
    const { message } = sign(queryMessage(newId(), this.zone, TYPE.AXFR), this.key);
    const out: Rr[] = [];
    let soas = 0;
    await tcpExchange(this.host, this.port, [message], (buf) => {
      const d = decode(buf);
      if (d.rcode !== 0) throw new Error(`zone transfer of ${this.zone} refused: ${rcodeText(d)}${d.rcode === 5 || d.rcode === 9 ? " (allow-transfer must name the key)" : ""}`);
      for (const a of d.answers) {
        if (a.type === "SOA") soas++;
        else out.push(a);
      }
      return soas >= 2;
    });
    return out;
  }
}
