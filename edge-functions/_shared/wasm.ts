// The crypto core compiled to WebAssembly (built by `./x wasm` into ./wasm/). Every function
// validates with this one module, the same code the apps run.
export * as core from "./wasm/spots_crypto_wasm.js";
