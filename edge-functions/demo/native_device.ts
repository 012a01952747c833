// A device backed by the native library (libspots_signal, the build the Flutter app links) through
// Deno FFI, with its own encrypted on-disk store: the same C ABI the app's Dart bindings call.
import type { OutgoingMessage, PreKeyBundleJson } from "../_shared/wasm/spots_crypto_wasm.d.ts";

const symbols = {
  spots_transport_open: {
    parameters: ["buffer", "buffer", "usize", "buffer", "u32", "buffer"],
    result: "i32",
  },
  spots_transport_close: { parameters: ["pointer"], result: "void" },
  spots_ensure_ready: { parameters: ["pointer", "u64", "buffer"], result: "i32" },
  spots_process_bundle: {
    parameters: ["pointer", "buffer", "u32", "buffer", "usize", "u64", "buffer"],
    result: "i32",
  },
  spots_encrypt_to_agent: {
    parameters: ["pointer", "buffer", "u32", "buffer", "usize", "u64", "buffer"],
    result: "i32",
  },
  spots_decrypt_from_agent: {
    parameters: ["pointer", "buffer", "u32", "u8", "buffer", "usize", "u64", "buffer", "buffer"],
    result: "i32",
  },
  spots_buffer_free: { parameters: ["buffer"], result: "void" },
  spots_last_error_message: { parameters: [], result: "pointer" },
  spots_core_version: { parameters: [], result: "pointer" },
} as const;

type Library = Deno.DynamicLibrary<typeof symbols>["symbols"];

let library: Library | null = null;

/** Opens the native library once (path from SPOTS_NATIVE_LIB). */
export function nativeLibrary(path = Deno.env.get("SPOTS_NATIVE_LIB")): Library {
  if (!library) {
    if (!path) throw new Error("SPOTS_NATIVE_LIB is not set (path of libspots_signal.so)");
    library = Deno.dlopen(path, symbols).symbols;
  }
  return library;
}

export function nativeCoreVersion(): string {
  return cString(nativeLibrary().spots_core_version());
}

const encoder = new TextEncoder();
const cstr = (text: string) => encoder.encode(`${text}\0`);

function cString(pointer: Deno.PointerValue): string {
  return pointer ? Deno.UnsafePointerView.getCString(pointer) : "";
}

/** A `SpotsBuffer` {data, len} the library fills; read it, then free it (wiped). */
function withBuffer<T>(fill: (out: Uint8Array) => number, read: (bytes: Uint8Array) => T): T {
  const out = new Uint8Array(16);
  check(fill(out));
  try {
    const view = new DataView(out.buffer);
    const data = Deno.UnsafePointer.create(view.getBigUint64(0, true));
    const len = Number(view.getBigUint64(8, true));
    const bytes = data && len > 0
      ? new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(data, len).slice(0))
      : new Uint8Array();
    return read(bytes);
  } finally {
    nativeLibrary().spots_buffer_free(out);
  }
}

export class NativeError extends Error {
  constructor(readonly status: number, message: string) {
    super(`native status ${status}: ${message}`);
  }
}

function check(status: number): void {
  if (status !== 0) {
    throw new NativeError(status, cString(nativeLibrary().spots_last_error_message()));
  }
}

const json = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes));

export class NativeDevice {
  private constructor(private handle: Deno.PointerValue) {}

  /** Opens (creating on first use) the store at `storePath` under the 32-byte `storeKey`. */
  static open(storePath: string, storeKey: Uint8Array, agentId: string, deviceId: number) {
    const out = new BigUint64Array(1);
    check(
      nativeLibrary().spots_transport_open(
        cstr(storePath),
        storeKey,
        BigInt(storeKey.length),
        cstr(agentId),
        deviceId,
        new Uint8Array(out.buffer),
      ),
    );
    return new NativeDevice(Deno.UnsafePointer.create(out[0]));
  }

  close(): void {
    nativeLibrary().spots_transport_close(this.handle);
    this.handle = null;
  }

  /** The upload JSON to publish, as `Device.ensureReady` returns it. */
  ensureReady(nowMs: number): { needsUpload: boolean; upload: string } {
    return withBuffer(
      (out) => nativeLibrary().spots_ensure_ready(this.handle, BigInt(nowMs), out),
      (bytes) => {
        const ready = json(bytes);
        return { needsUpload: ready.needs_upload, upload: JSON.stringify(ready.upload) };
      },
    );
  }

  processBundle(agentId: string, deviceId: number, bundle: PreKeyBundleJson, nowMs: number) {
    const bundleJson = encoder.encode(JSON.stringify(bundle));
    return withBuffer(
      (out) =>
        nativeLibrary().spots_process_bundle(
          this.handle,
          cstr(agentId),
          deviceId,
          bundleJson,
          BigInt(bundleJson.length),
          BigInt(nowMs),
          out,
        ),
      json,
    );
  }

  /** One ciphertext per device (`"all"`: every device of the agent and our own other ones). */
  encrypt(
    agentId: string,
    target: number | "all",
    plaintext: Uint8Array,
    nowMs: number,
  ): OutgoingMessage[] {
    return withBuffer(
      (out) =>
        nativeLibrary().spots_encrypt_to_agent(
          this.handle,
          cstr(agentId),
          target === "all" ? 0 : target,
          plaintext,
          BigInt(plaintext.length),
          BigInt(nowMs),
          out,
        ),
      (bytes) =>
        json(bytes).map((
          m: { agent_id: string; device_id: number; type: 2 | 3; body: string },
        ) => ({
          agentId: m.agent_id,
          deviceId: m.device_id,
          messageType: m.type,
          body: fromHex(m.body),
        })),
    );
  }

  decrypt(
    agentId: string,
    deviceId: number,
    messageType: number,
    body: Uint8Array,
    nowMs: number,
  ): { plaintext: Uint8Array; identityChanged: boolean; newSession: boolean } {
    const flags = new Uint32Array(1);
    return withBuffer(
      (out) =>
        nativeLibrary().spots_decrypt_from_agent(
          this.handle,
          cstr(agentId),
          deviceId,
          messageType,
          body,
          BigInt(body.length),
          BigInt(nowMs),
          out,
          new Uint8Array(flags.buffer),
        ),
      (plaintext) => ({
        plaintext,
        identityChanged: (flags[0] & 1) !== 0,
        newSession: (flags[0] & 2) !== 0,
      }),
    );
  }
}

function fromHex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}
