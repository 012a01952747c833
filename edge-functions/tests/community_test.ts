// community-keys with real WASM devices: an admin rotates, seals the epoch key for every member
// device, posts the shares; members fetch their shares, open them and read community messages.
// Refusals: plaintext shares, non-Signal types, non-members, non-admin rotation, removed
// members after a hard rotation, closed epochs.
import assert from "node:assert/strict";
import { core } from "../_shared/wasm.ts";
import {
  admin,
  b64,
  call,
  closeAdmin,
  currentEpoch,
  epochRow,
  fetchBody,
  type Member,
  newUser,
  publishedDevice,
  shareBody,
  shareCommunity,
  type ShareRow,
  unb64,
} from "./support.ts";

async function world() {
  const admin_ = await publishedDevice(await newUser("cadm"));
  const bob = await publishedDevice(await newUser("cbob"));
  const carol = await publishedDevice(await newUser("ccar"));
  const community = await shareCommunity(admin_.user, bob.user, carol.user);
  const recipients = [];
  for (const m of [bob, carol]) {
    const f = await call("prekeys/fetch", {
      jwt: admin_.user.jwt,
      body: fetchBody(admin_, m.agentId, 1),
    });
    assert.equal(f.status, 200, f.text);
    recipients.push({ agentId: m.agentId, deviceId: 1, bundle: f.body.bundles[0].bundle });
  }
  return { admin: admin_, bob, carol, community, recipients };
}

Deno.test("shares posted through the gateway open on member devices; messages decrypt", async () => {
  const w = await world();
  const now = Date.now();
  // Epoch 1 is the community's first: the admin draws its key for the server's row.
  const first = await currentEpoch(w.community);
  assert.equal(first.keyId, 1);
  const rotation = w.admin.device.communityRotate(w.community, first, w.recipients, now);
  assert.equal(rotation.shares.length, 2);
  assert.equal(rotation.epoch.keyId, 1);
  assert.ok(rotation.shares.every((s: { keyId: number }) => s.keyId === 1));
  const posted = await call("community-keys/shares", {
    jwt: w.admin.user.jwt,
    body: shareBody(w.admin, w.community, 1, rotation.shares),
  });
  assert.equal(posted.status, 200, posted.text);
  assert.equal(posted.body.accepted, 2);

  const mine = await call(
    `community-keys/mine?agent_id=${w.bob.agentId}&device_id=1&community_id=${w.community}`,
    { jwt: w.bob.user.jwt },
  );
  assert.equal(mine.status, 200);
  assert.equal(mine.body.shares.length, 1);
  const [share] = mine.body.shares;
  assert.equal(share.from_agent_id, w.admin.agentId);
  // Bob derives the same epoch id from the row he reads himself.
  w.bob.device.communityApplyEpochs(w.community, [await currentEpoch(w.community)]);
  const opened = w.bob.device.communityOpenShare({
    fromAgentId: share.from_agent_id,
    fromDeviceId: share.from_device_id,
    communityId: w.community,
    keyId: share.key_id,
    encryptionType: "signal_protocol",
    shareKind: share.share_kind,
    messageType: share.message_type,
    body: unb64(share.encrypted_share),
  }, now);
  assert.equal(opened.firstForCommunity, true);
  assert.equal(opened.epochId, rotation.epoch.epochId);
  w.bob.device.communityStartUsing(w.community, rotation.epoch.keyId);

  w.admin.device.communityStartUsing(w.community, rotation.epoch.keyId);
  const post = w.admin.device.communityEncrypt(
    w.community,
    new TextEncoder().encode("hello all"),
    now,
  );
  // An epoch-scheme blob: the row carries the server's key_id and no chain position; the public
  // header names the derived epoch id and the sender.
  assert.equal(post.keyId, 1);
  assert.equal(post.chainId, null);
  const header = core.blobHeader(post.blob);
  assert.equal(header.scheme, "epoch");
  assert.equal(header.epochId, rotation.epoch.epochId);
  assert.equal(header.agentId, w.admin.agentId);
  assert.throws(() => core.blobHeader(post.blob.slice(0, 20)), /community blob/);
  const got = w.bob.device.communityDecrypt(w.community, w.admin.agentId, 1, post.blob, now);
  assert.ok(got.kind === "message");
  assert.equal(new TextDecoder().decode(got.plaintext), "hello all");
  assert.equal(got.keyId, 1);

  // A share row whose key_id names another epoch than its sealed payload is refused.
  assert.throws(
    () =>
      w.carol.device.communityOpenShare({
        fromAgentId: w.admin.agentId,
        fromDeviceId: 1,
        communityId: w.community,
        keyId: 2,
        encryptionType: "signal_protocol",
        shareKind: "epoch_key_v1",
        messageType: rotation.shares[1].messageType,
        body: rotation.shares[1].body,
      }, now),
    /epoch/,
  );

  // Carol's share is hers only.
  const carols = await call(
    `community-keys/mine?agent_id=${w.carol.agentId}&device_id=1&community_id=${w.community}`,
    { jwt: w.carol.user.jwt },
  );
  assert.equal(carols.body.shares.length, 1);
  assert.notEqual(carols.body.shares[0].id, share.id);
});

Deno.test("plaintext shares, non-Signal types and non-members are refused", async () => {
  const w = await world();
  const rotation = w.admin.device.communityRotate(
    w.community,
    await currentEpoch(w.community),
    w.recipients,
    Date.now(),
  );
  const [good] = rotation.shares;
  const post = (shares: unknown[], from: Member = w.admin) =>
    call("community-keys/shares", {
      jwt: from.user.jwt,
      body: { ...shareBody(from, w.community, 1, []), shares },
    });
  const base = shareBody(w.admin, w.community, 1, [good]).shares[0];
  let r = await post([{
    ...base,
    encrypted_share: b64(new TextEncoder().encode('{"epoch_key":"0011"}')),
  }]);
  assert.equal(r.status, 422);
  assert.equal(r.body.error.code, "malformed_message");
  r = await post([{ ...base, encrypted_share: b64(new Uint8Array(32).fill(7)), message_type: 2 }]);
  assert.equal(r.status, 422);
  r = await post([{ ...base, encryption_type: "aes_gcm_plaintext_key" }]);
  assert.equal(r.body.error.code, "invalid_share");
  r = await post([{ ...base, share_kind: "raw_key" }]);
  assert.equal(r.body.error.code, "invalid_share");
  r = await post([{ ...base, message_type: 8 }]);
  assert.equal(r.body.error.code, "not_signal_message");

  const outsider = await publishedDevice(await newUser("cout"));
  r = await post([base], outsider);
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "not_a_member");
  r = await post([{ ...base, to_agent_id: outsider.agentId }]);
  assert.equal(r.status, 409);
  assert.equal(r.body.error.code, "recipient_not_member");
  const [count] = await admin()`select count(*)::int as n from public.community_sender_key_shares
    where community_id = ${w.community}`;
  assert.equal(count.n, 0);
});

Deno.test("rotation: admins only; soft keeps the old epoch open; hard drops removed members", async () => {
  const w = await world();
  const rotate = (from: Member, kind: string, extra = {}) =>
    call("community-keys/rotate", {
      jwt: from.user.jwt,
      body: { agent_id: from.agentId, device_id: 1, community_id: w.community, kind, ...extra },
    });
  const denied = await rotate(w.bob, "soft");
  assert.equal(denied.status, 403);
  assert.equal(denied.body.error.code, "not_permitted");
  assert.equal((await rotate(w.admin, "medium")).status, 400);

  const soft = await rotate(w.admin, "soft", { grace_seconds: 3600 });
  assert.equal(soft.status, 200, soft.text);
  assert.equal(soft.body.epoch.key_id, 2);
  assert.equal(soft.body.epoch.rotation_kind, "soft");
  assert.ok(soft.body.epoch.grace_until);
  assert.equal(soft.body.recipients.length, 3);

  // The admin starts epoch 2 from the server's answer; shares for the previous epoch are still
  // accepted during the grace window.
  const rotation = w.admin.device.communityRotate(
    w.community,
    epochRow(soft.body.epoch),
    w.recipients,
    Date.now(),
  );
  assert.equal(rotation.epoch.keyId, 2);
  assert.equal(rotation.epoch.rotation, "soft");
  const late = await call("community-keys/shares", {
    jwt: w.admin.user.jwt,
    body: shareBody(w.admin, w.community, 1, rotation.shares.slice(0, 1)),
  });
  assert.equal(late.status, 200, late.text);

  // Carol is removed; a hard rotation leaves her out and closes epoch 2 at once.
  await admin()`update public.community_members set removed_at = now()
    where community_id = ${w.community} and user_id = ${w.carol.user.id}`;
  const hard = await rotate(w.admin, "hard");
  assert.equal(hard.status, 200);
  assert.equal(hard.body.epoch.key_id, 3);
  const devices = hard.body.recipients.map((r: { agent_id: string }) => r.agent_id);
  assert.ok(!devices.includes(w.carol.agentId));
  assert.deepEqual(Object.keys(hard.body.recipients[0]).sort(), ["agent_id", "device_id"]);

  const toCarol = rotation.shares.find((s: ShareRow) => s.toAgentId === w.carol.agentId)!;
  const refused = await call("community-keys/shares", {
    jwt: w.admin.user.jwt,
    body: shareBody(w.admin, w.community, 3, [toCarol]),
  });
  assert.equal(refused.status, 409);
  assert.equal(refused.body.error.code, "recipient_not_member");
  const closed = await call("community-keys/shares", {
    jwt: w.admin.user.jwt,
    body: shareBody(w.admin, w.community, 2, rotation.shares.slice(0, 1)),
  });
  assert.equal(closed.status, 409);
  assert.equal(closed.body.error.code, "epoch_closed");
  await closeAdmin();
});
