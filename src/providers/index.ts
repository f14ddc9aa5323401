import { upstreamAllot } from "./allot.js";
import { equinix } from "./equinix.js";
import type { Provider } from "./provider.js";

export type { ObtainedBlock, Provider, ProviderRecord } from "./provider.js";
export { ProviderError } from "./provider.js";

/** Every provider by the name a pool's `provider.type` uses. */
export const providers: Record<string, Provider> = { equinix, allot: upstreamAllot };
