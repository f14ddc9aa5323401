/**
 * A network's configuration for a real DHCP server in restricted mode: it answers only MACs that hold
 * a reservation. dnsmasq gets a static dhcp-range per subnet and one hosts-file line per reservation
 * (the hosts file reloads on SIGHUP, the main file does not); ISC Kea gets subnets whose only pool is
 * limited to the KNOWN class, and the reservations. MTU and search domains are sent whether or not
 * the client asks, since common clients (udhcpc) ask for neither.
 */
import { formatAddress, parseAddress, parsePrefix, prefixContains, prefixFirst, prefixLast } from "../addr/index.js";
import type { NetworkConfig } from "./networks.js";

export type ServerKind = "dnsmasq" | "kea";

export interface RenderTarget {
  /** The interface the server listens on. */
  interface: string;
  /** Where the server's own files (leases, log, pid, control socket) go. */
  dir: string;
  /** dnsmasq: reservations as dhcp-host lines in the one file (for people who run their own), not a hosts file. */
  inlineHosts?: boolean;
}

export interface Rendered {
  /** File name (within dir) to contents. */
  files: Record<string, string>;
  /** The file the server is started with. */
  main: string;
}

/** dnsmasq's hosts file: reread on SIGHUP, so reservation changes need no restart. */
export function dnsmasqHosts(c: NetworkConfig): string {
  return c.reservations.map((r) => `${hostEntry(r)}\n`).join("");
}

/** One reservation as dnsmasq writes it (host names were checked when the reservations were read). */
const hostEntry = (r: NetworkConfig["reservations"][number]) => `${r.mac},${r.ip}${r.hostname ? `,${r.hostname}` : ""}`;

export function renderDnsmasq(c: NetworkConfig, t: RenderTarget): Rendered {
  const o = c.options;
  const lines = [
    // nothing here may change with the reservations: they live in the hosts file, reloaded by SIGHUP
    `# Allot DHCP network ${c.network}: answers only the reserved MACs`,
    "port=0",
    `interface=${t.interface}`,
    "bind-interfaces",
    "dhcp-authoritative",
    ...(t.inlineHosts ? [] : [`dhcp-hostsfile=${t.dir}/hosts`]),
    `dhcp-leasefile=${t.dir}/dnsmasq.leases`,
    `pid-file=${t.dir}/dnsmasq.pid`,
    "log-dhcp",
    `log-facility=${t.dir}/dnsmasq.log`,
  ];
  c.subnets.forEach((s, i) => {
    const tag = `s${i}`;
    lines.push(`# subnet ${s.cidr} (pool ${s.pool})`, `dhcp-range=set:${tag},${s.network},static,${s.netmask},${o.leaseSeconds}s`);
    if (s.router) lines.push(`dhcp-option=tag:${tag},option:router,${s.router}`);
    if (s.dnsServers.length) lines.push(`dhcp-option=tag:${tag},option:dns-server,${s.dnsServers.join(",")}`);
    if (o.domainName) lines.push(`dhcp-option=tag:${tag},option:domain-name,${o.domainName}`);
    if (o.searchDomains?.length) lines.push(`dhcp-option-force=tag:${tag},option:domain-search,${o.searchDomains.join(",")}`);
    if (o.ntpServers?.length) lines.push(`dhcp-option=tag:${tag},option:ntp-server,${o.ntpServers.join(",")}`);
    if (o.mtu) lines.push(`dhcp-option-force=tag:${tag},option:mtu,${o.mtu}`);
  });
  if (t.inlineHosts) {
    lines.push(...c.reservations.map((r) => `dhcp-host=${hostEntry(r)}`));
    return { main: "dnsmasq.conf", files: { "dnsmasq.conf": `${lines.join("\n")}\n` } };
  }
  return { main: "dnsmasq.conf", files: { "dnsmasq.conf": `${lines.join("\n")}\n`, hosts: dnsmasqHosts(c) } };
}

export function renderKea(c: NetworkConfig, t: RenderTarget): Rendered {
  const o = c.options;
  const subnet4 = c.subnets.map((s, i) => {
    const prefix = parsePrefix(s.cidr);
    const at = (value: bigint) => formatAddress({ family: 4, value });
    const option = (name: string, data: string, always = false) => ({ name, data, ...(always ? { "always-send": true } : {}) });
    const options = [
      ...(s.router ? [option("routers", s.router)] : []),
      ...(s.dnsServers.length ? [option("domain-name-servers", s.dnsServers.join(", "))] : []),
      ...(o.domainName ? [option("domain-name", o.domainName)] : []),
      ...(o.searchDomains?.length ? [option("domain-search", o.searchDomains.join(", "), true)] : []),
      ...(o.ntpServers?.length ? [option("ntp-servers", o.ntpServers.join(", "))] : []),
      ...(o.mtu ? [option("interface-mtu", String(o.mtu), true)] : []),
    ];
    return {
      id: i + 1,
      subnet: s.cidr,
      // the only pool is for clients with a reservation: an unknown MAC gets nothing
      pools: prefix.length <= 30 ? [{ pool: `${at(prefixFirst(prefix) + 1n)} - ${at(prefixLast(prefix) - 1n)}`, "client-class": "KNOWN" }] : [],
      "option-data": options,
      reservations: c.reservations
        .filter((r) => prefixContains(prefix, parseAddress(r.ip)))
        .map((r) => ({ "hw-address": r.mac, "ip-address": r.ip, ...(r.hostname ? { hostname: r.hostname } : {}) })),
    };
  });
  const config = {
    Dhcp4: {
      "interfaces-config": { interfaces: [t.interface], "dhcp-socket-type": "raw" },
      "control-socket": { "socket-type": "unix", "socket-name": `${t.dir}/kea4.sock` },
      "lease-database": { type: "memfile", persist: true, name: `${t.dir}/kea-leases4.csv`, "lfc-interval": 3600 },
      "host-reservation-identifiers": ["hw-address"],
      "valid-lifetime": o.leaseSeconds,
      "renew-timer": Math.floor(o.leaseSeconds / 2),
      "rebind-timer": Math.floor((o.leaseSeconds * 7) / 8),
      // all of the network's subnets are on the one interface: a shared network, so Kea serves each
      // (with the interface named, whether or not the interface has an address in it)
      "shared-networks": [{ name: c.network, interface: t.interface, subnet4 }],
      loggers: [{ name: "kea-dhcp4", output_options: [{ output: `${t.dir}/kea-dhcp4.log` }], severity: "INFO", debuglevel: 0 }],
    },
  };
  return { main: "kea-dhcp4.json", files: { "kea-dhcp4.json": `${JSON.stringify(config, null, 2)}\n` } };
}

export function render(kind: ServerKind, c: NetworkConfig, t: RenderTarget): Rendered {
  return kind === "kea" ? renderKea(c, t) : renderDnsmasq(c, t);
}
