export * from "./address.js";
export * from "./prefix.js";
