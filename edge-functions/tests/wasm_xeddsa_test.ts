// The WASM build of the core, loaded in Deno, against libsignal's XEdDSA vectors.
import assert from "node:assert/strict";
import { core } from "../_shared/wasm.ts";
import { hex, vector } from "./support.ts";

type XeddsaCase = {
  public: string;
  message: string;
  signature: string;
  verify: boolean;
  verify_message_plus_zero_byte: boolean;
  verify_with_sign_bit_flipped: boolean;
};

Deno.test("WASM verifies every libsignal XEdDSA vector and rejects the tampered forms", async () => {
  const file = await vector("xeddsa.json");
  const cases = file.vectors as XeddsaCase[];
  assert.ok(cases.length > 0);
  for (const c of cases) {
    const publicKey = hex(c.public);
    const message = hex(c.message);
    const signature = hex(c.signature);
    assert.equal(core.verifySignature(publicKey, message, signature), c.verify);
    const longer = new Uint8Array([...message, 0]);
    assert.equal(
      core.verifySignature(publicKey, longer, signature),
      c.verify_message_plus_zero_byte,
    );
    const flipped = signature.slice();
    flipped[63] ^= 0x80;
    assert.equal(core.verifySignature(publicKey, message, flipped), c.verify_with_sign_bit_flipped);
  }
});

Deno.test("WASM treats malformed keys and signatures as invalid, without throwing", () => {
  const key = new Uint8Array(33).fill(5);
  assert.equal(core.verifySignature(key.slice(0, 20), new Uint8Array(), new Uint8Array(64)), false);
  assert.equal(
    core.verifySignature(new Uint8Array(33).fill(6), new Uint8Array(), new Uint8Array(64)),
    false,
  );
  assert.equal(core.verifySignature(key, new Uint8Array(), new Uint8Array(63)), false);
});

Deno.test("WASM self-check passes", () => {
  const report = core.selfCheck() as { ok: boolean };
  assert.equal(report.ok, true);
});
