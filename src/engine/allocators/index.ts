import type { Strategy } from "../types.js";
import type { Allocator } from "./allocator.js";
import { lowestFree } from "./lowest-free.js";
import { random } from "./random.js";

export type { Allocator, AllocatorInput } from "./allocator.js";

export const allocators: Record<Strategy, Allocator> = { "lowest-free": lowestFree, random };
