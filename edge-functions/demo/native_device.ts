// A device backed by the native library (libspots_signal, the build the Flutter app links) through
// Deno FFI, with its own encrypted on-disk store: the same C ABI the app's Dart bindings call.
import type {
  CommunityEpochRow,
  CommunityPost,
  OutgoingMessage,
  PreKeyBundleJson,
  ShareRecipient,
  ShareRowJs,
} from "../_shared/wasm/spots_crypto_wasm.d.ts";
import { blobHeader } from "../_shared/wasm/spots_crypto_wasm.js";

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
  spots_community_apply_epochs: {
    parameters: ["pointer", "buffer", "buffer", "usize", "buffer"],
    result: "i32",
  },
  spots_community_rotate: {
    parameters: [
      "pointer",
      "buffer",
      "u32",
      "u64",
      "buffer",
      "u64",
      "buffer",
      "usize",
      "u64",
      "buffer",
    ],
    result: "i32",
  },
  spots_community_share_sender_chain: {
    parameters: ["pointer", "buffer", "u32", "buffer", "usize", "u64", "buffer"],
    result: "i32",
  },
  spots_community_open_share: {
    parameters: [
      "pointer",
      "buffer",
      "u32",
      "buffer",
      "u32",
      "buffer",
      "buffer",
      "u8",
      "buffer",
      "usize",
      "u64",
      "buffer",
    ],
    result: "i32",
  },
  spots_community_start_using: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  spots_community_encrypt: {
    parameters: ["pointer", "buffer", "buffer", "usize", "u64", "buffer", "buffer"],
    result: "i32",
  },
  spots_community_decrypt: {
    parameters: [
      "pointer",
      "buffer",
      "buffer",
      "u32",
      "buffer",
      "usize",
      "u64",
      "buffer",
      "buffer",
    ],
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

/** The bytes of a `SpotsBuffer` {data, len} the library filled. */
function bufferBytes(out: Uint8Array): Uint8Array {
  const view = new DataView(out.buffer);
  const data = Deno.UnsafePointer.create(view.getBigUint64(0, true));
  const len = Number(view.getBigUint64(8, true));
  return data && len > 0
    ? new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(data, len).slice(0))
    : new Uint8Array();
}

/** Calls with two `SpotsBuffer`s the library fills; reads them, then frees them (wiped). */
function withBuffers<T>(
  fill: (first: Uint8Array, second: Uint8Array) => number,
  read: (first: Uint8Array, second: Uint8Array) => T,
): T {
  const [first, second] = [new Uint8Array(16), new Uint8Array(16)];
  try {
    check(fill(first, second));
    return read(bufferBytes(first), bufferBytes(second));
  } finally {
    nativeLibrary().spots_buffer_free(first);
    nativeLibrary().spots_buffer_free(second);
  }
}

/** Calls with one `SpotsBuffer` the library fills; reads it, then frees it (wiped). */
function withBuffer<T>(fill: (out: Uint8Array) => number, read: (bytes: Uint8Array) => T): T {
  return withBuffers((first) => fill(first), (first) => read(first));
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

  // --- Community calls: the same shapes as the WASM Device's -----------------------------------

  communityApplyEpochs(communityId: string, epochs: CommunityEpochRow[]): void {
    const rows = encoder.encode(JSON.stringify(epochs.map((e) => ({
      key_id: e.keyId,
      rotated_at_ms: e.rotatedAtMs,
      rotation: e.rotation,
      grace_until_ms: e.graceUntilMs ?? null,
    }))));
    withBuffer(
      (out) =>
        nativeLibrary().spots_community_apply_epochs(
          this.handle,
          cstr(communityId),
          rows,
          BigInt(rows.length),
          out,
        ),
      () => undefined,
    );
  }

  communityRotate(
    communityId: string,
    epoch: CommunityEpochRow,
    recipients: ShareRecipient[],
    nowMs: number,
  ): { epoch: { keyId: number; epochId: string }; shares: ShareRowJs[] } {
    const list = recipientsJson(recipients);
    return withBuffer(
      (out) =>
        nativeLibrary().spots_community_rotate(
          this.handle,
          cstr(communityId),
          epoch.keyId,
          BigInt(epoch.rotatedAtMs),
          cstr(epoch.rotation),
          BigInt(epoch.graceUntilMs ?? 0),
          list,
          BigInt(list.length),
          BigInt(nowMs),
          out,
        ),
      (bytes) => {
        const rotation = json(bytes);
        return {
          epoch: { keyId: rotation.epoch.key_id, epochId: rotation.epoch.epoch_id },
          shares: rotation.shares.map(shareRow),
        };
      },
    );
  }

  communityStartSenderChain(
    communityId: string,
    keyId: number,
    recipients: ShareRecipient[],
    nowMs: number,
  ): ShareRowJs[] {
    const list = recipientsJson(recipients);
    return withBuffer(
      (out) =>
        nativeLibrary().spots_community_share_sender_chain(
          this.handle,
          cstr(communityId),
          keyId,
          list,
          BigInt(list.length),
          BigInt(nowMs),
          out,
        ),
      (bytes) => json(bytes).map(shareRow),
    );
  }

  communityOpenShare(
    share: {
      fromAgentId: string;
      fromDeviceId: number;
      communityId: string;
      keyId: number;
      encryptionType: string;
      shareKind: string;
      messageType: number;
      body: Uint8Array;
    },
    nowMs: number,
  ): { fromAgentId: string; keyId: number; shareKind: string } {
    return withBuffer(
      (out) =>
        nativeLibrary().spots_community_open_share(
          this.handle,
          cstr(share.fromAgentId),
          share.fromDeviceId,
          cstr(share.communityId),
          share.keyId,
          cstr(share.encryptionType),
          cstr(share.shareKind),
          share.messageType,
          share.body,
          BigInt(share.body.length),
          BigInt(nowMs),
          out,
        ),
      (bytes) => {
        const opened = json(bytes);
        return {
          fromAgentId: opened.from_agent_id,
          keyId: opened.key_id,
          shareKind: opened.share_kind,
        };
      },
    );
  }

  communityStartUsing(communityId: string, keyId: number): void {
    check(nativeLibrary().spots_community_start_using(this.handle, cstr(communityId), keyId));
  }

  /** The blob and its row's columns; the chain position comes from the blob's public header. */
  communityEncrypt(communityId: string, payload: Uint8Array, nowMs: number): CommunityPost {
    const keyId = new Uint32Array(1);
    return withBuffer(
      (out) =>
        nativeLibrary().spots_community_encrypt(
          this.handle,
          cstr(communityId),
          payload,
          BigInt(payload.length),
          BigInt(nowMs),
          out,
          new Uint8Array(keyId.buffer),
        ),
      (blob) => {
        const header = blobHeader(blob);
        return { blob, keyId: keyId[0], chainId: header.chainId, iteration: header.iteration };
      },
    );
  }

  communityDecrypt(
    communityId: string,
    agentId: string,
    deviceId: number,
    blob: Uint8Array,
    nowMs: number,
  ):
    | { kind: "message"; plaintext: Uint8Array; keyId: number }
    | { kind: "missing_seed"; agentId: string; deviceId: number; request: Uint8Array } {
    return withBuffers(
      (plaintext, out) =>
        nativeLibrary().spots_community_decrypt(
          this.handle,
          cstr(communityId),
          cstr(agentId),
          deviceId,
          blob,
          BigInt(blob.length),
          BigInt(nowMs),
          plaintext,
          out,
        ),
      (plaintext, bytes) => {
        const result = json(bytes);
        return result.kind === "message" ? { kind: "message", plaintext, keyId: result.key_id } : {
          kind: "missing_seed",
          agentId: result.agent_id,
          deviceId: result.device_id,
          request: fromHex(result.request),
        };
      },
    );
  }
}

type NativeShareRow = {
  community_id: string;
  key_id: number;
  from_agent_id: string;
  from_device_id: number;
  to_agent_id: string;
  to_device_id: number;
  share_kind: ShareRowJs["shareKind"];
  message_type: 2 | 3;
  body: string;
};

function shareRow(row: NativeShareRow): ShareRowJs {
  return {
    communityId: row.community_id,
    keyId: row.key_id,
    fromAgentId: row.from_agent_id,
    fromDeviceId: row.from_device_id,
    toAgentId: row.to_agent_id,
    toDeviceId: row.to_device_id,
    encryptionType: "signal_protocol",
    shareKind: row.share_kind,
    messageType: row.message_type,
    body: fromHex(row.body),
  };
}

const recipientsJson = (recipients: ShareRecipient[]) =>
  encoder.encode(JSON.stringify(recipients.map((r) => ({
    agent_id: r.agentId,
    device_id: r.deviceId,
    bundle: r.bundle ?? null,
  }))));

function fromHex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}
