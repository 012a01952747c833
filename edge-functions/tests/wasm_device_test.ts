// The WASM build in Deno without the stack: the Device class end to end (sessions, sealed
// export/import), the validator face and its typed errors, the policy, safety numbers.
import assert from "node:assert/strict";
import { core } from "../_shared/wasm.ts";

const now = () => Date.now();
const text = (s: string) => new TextEncoder().encode(s);

function pair() {
  const alice = core.Device.create("alice", 1);
  const bob = core.Device.create("bob", 1);
  alice.ensureReady(now());
  const rows = core.validatePrekeyUpload(bob.ensureReady(now()).upload, now());
  alice.processBundle("bob", 1, rows.oneTime[0].bundle, now());
  return { alice, bob, rows };
}

function spotsError(fn: () => unknown): { code: string; classCode?: number; name: string } {
  try {
    fn();
  } catch (error) {
    return error as { code: string; classCode?: number; name: string };
  }
  throw new Error("expected a SpotsError");
}

Deno.test("Device: ensureReady, processBundle, encrypt, decrypt and reply", () => {
  const { alice, bob, rows } = pair();
  assert.equal(rows.oneTime.length, 100);
  assert.equal(rows.agentId, "bob");
  const [first] = alice.encrypt("bob", "all", text("hello"), now());
  assert.equal(first.messageType, 3);
  assert.deepEqual(core.validateSignalMessage(3, first.body), {
    messageType: 3,
    version: 4,
    len: first.body.length,
  });
  const got = bob.decrypt("alice", 1, 3, first.body, now());
  assert.equal(new TextDecoder().decode(got.plaintext), "hello");
  assert.equal(got.newSession, true);
  const [reply] = bob.encrypt("alice", 1, text("hi"), now());
  assert.equal(reply.messageType, 2);
  assert.equal(
    new TextDecoder().decode(alice.decrypt("bob", 1, 2, reply.body, now()).plaintext),
    "hi",
  );
  // Duplicates are refused with a typed error.
  const dup = spotsError(() => bob.decrypt("alice", 1, 3, first.body, now()));
  assert.equal(dup.name, "SpotsError");
  assert.equal(dup.code, "duplicate_message");
  assert.equal(dup.classCode, 21);
  // Safety numbers agree on both sides and with the free function.
  const a = alice.safetyNumber("bob", 1);
  const b = bob.safetyNumber("alice", 1);
  assert.equal(a.displayable, b.displayable);
  assert.equal(a.displayable.length, 60);
  const free = core.safetyNumber("alice", alice.identityKey(), "bob", bob.identityKey());
  assert.equal(free.displayable, a.displayable);
  assert.deepEqual(free.scannable, a.scannable);
});

Deno.test("Device: state export is sealed, bound to the device, and restores sessions", () => {
  const { alice, bob } = pair();
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealed = alice.exportState(key);
  assert.equal(sealed[0], 1);
  // A fresh nonce every time: two exports of the same state differ.
  assert.notDeepEqual(alice.exportState(key), sealed);
  const restored = core.Device.importState(sealed, key, "alice", 1);
  const [m] = restored.encrypt("bob", 1, text("after restore"), now());
  assert.equal(
    new TextDecoder().decode(bob.decrypt("alice", 1, m.messageType, m.body, now()).plaintext),
    "after restore",
  );

  assert.equal(
    spotsError(() => core.Device.importState(sealed, new Uint8Array(32), "alice", 1)).code,
    "authentication_failed",
  );
  assert.equal(
    spotsError(() => core.Device.importState(sealed, key, "alice", 2)).code,
    "authentication_failed",
  );
  assert.equal(
    spotsError(() => core.Device.importState(sealed, key.slice(1), "alice", 1)).code,
    "invalid_argument",
  );
  const future = sealed.slice();
  future[0] = 2;
  assert.equal(
    spotsError(() => core.Device.importState(future, key, "alice", 1)).code,
    "unsupported_version",
  );
  assert.equal(
    spotsError(() => alice.encrypt("carol", "all", text("x"), now())).code,
    "missing_sessions",
  );
  assert.equal(
    spotsError(() => alice.encrypt("bob", 0, text("x"), now())).code,
    "invalid_argument",
  );
  assert.equal(spotsError(() => core.Device.create("bad id!", 1)).code, "invalid_argument");
});

Deno.test("validator face: digests, typed refusals, and the eligibility policy", () => {
  const device = core.Device.create("dora", 3);
  const upload = device.ensureReady(now()).upload;
  const rows = core.validatePrekeyUpload(upload, now());
  assert.equal(core.bundleDigest(JSON.stringify(rows.lastResort.bundle)), rows.keyDigest);
  assert.notEqual(core.bundleDigest(JSON.stringify(rows.oneTime[0].bundle)), rows.keyDigest);
  const tampered = JSON.parse(upload);
  tampered.signed_pre_key.signature = "00".repeat(64);
  const e = spotsError(() => core.validatePrekeyUpload(JSON.stringify(tampered), now()));
  assert.equal(e.code, "invalid_signature");
  assert.equal(e.classCode, 11);
  assert.equal(
    spotsError(() => core.validatePrekeyUpload(upload, now(), now() - 1)).code,
    "invalid_expiry",
  );
  assert.equal(
    spotsError(() => core.validatePrekeyUpload(upload, Number.NaN)).code,
    "invalid_argument",
  );
  assert.equal(
    spotsError(() => core.validateSignalMessage(3, text("plaintext"))).code,
    "malformed_message",
  );
  assert.equal(
    spotsError(() => core.validateShare("signal_protocol", "epoch_key_v1", 1, text("x"))).code,
    "not_signal_message",
  );

  const facts = {
    same_owner: false,
    blocked_by_caller: false,
    blocked_by_target: false,
    shared_communities: [],
    connection: { entanglement_score: 0.7, compatibility_score: 0.1 },
    invite: { presented: false, valid: false },
    contact_via_invite: false,
    thresholds: { min_entanglement_score: 0.5, min_compatibility_score: 0.5 },
  };
  assert.deepEqual(core.evaluateEligibility(facts), { allowed: true, reason: "ai2ai_connection" });
  assert.deepEqual(core.evaluateEligibility({ ...facts, blocked_by_target: true }), {
    allowed: false,
    reason: "blocked_by_target",
  });
  assert.deepEqual(
    core.evaluateEligibility({ ...facts, connection: null }),
    { allowed: false, reason: "no_relationship" },
  );
  assert.equal(
    spotsError(() => core.evaluateEligibility({ same_owner: true } as never)).code,
    "invalid_argument",
  );
});
