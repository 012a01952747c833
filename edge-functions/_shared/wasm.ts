// The crypto core compiled to WebAssembly (built by `./x wasm` into ./wasm/). Every function
// validates with this one module, the same code the apps run.
import { HttpError } from "./http.ts";
export * as core from "./wasm/spots_crypto_wasm.js";

/** A SpotsError thrown by the core as a 422 with the core's code. */
export function rejected(error: unknown, where?: string): HttpError {
  const e = error as { name?: string; code?: string; message?: string };
  if (e?.name !== "SpotsError" || typeof e.code !== "string") throw error;
  const message = where ? `${where}: ${e.message}` : (e.message ?? e.code);
  return new HttpError(422, e.code, message);
}
