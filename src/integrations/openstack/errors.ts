/**
 * Neutron's error bodies, `{"NeutronError": {type, message, detail}}`, which the openstack CLI and
 * oVirt read the message from. Types and messages follow Neutron's own where a client may match on them.
 */
import { AllotError } from "../../engine/errors.js";

export class NeutronError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    /** Neutron's `detail`: where in the request it went wrong, when that is more than the message says. */
    readonly detail = "",
  ) {
    super(message);
  }
}

const TITLES: Record<string, string> = { network: "Network", subnet: "Subnet", subnetpool: "SubnetPool", port: "Port" };

export const notFound = (kind: string, id: string) => new NeutronError(404, `${TITLES[kind] ?? kind}NotFound`, `${TITLES[kind] ?? kind} ${id} could not be found.`);

export const invalidInput = (message: string) => new NeutronError(400, "InvalidInput", `Invalid input for operation: ${message}`);

/** An engine error met while serving a Neutron call, in Neutron's words where there are any. */
export function fromAllot(err: AllotError): NeutronError {
  const type: Record<string, string> = {
    "pool-exhausted": "IpAddressGenerationFailure",
    "address-unavailable": "IpAddressAlreadyAllocated",
    "block-unavailable": "SubnetAllocationError",
    "pool-overlap": "InvalidInput",
    forbidden: "PolicyNotAuthorized",
  };
  const status = err.code === "pool-overlap" ? 400 : err.status;
  return new NeutronError(status, type[err.code] ?? (status === 404 ? "NotFound" : status === 409 ? "Conflict" : "BadRequest"), err.message);
}
