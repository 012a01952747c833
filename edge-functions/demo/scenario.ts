// The demo scenario (`./x demo`, and `tests/e2e_test.ts`): simulated devices, native builds of
// the core (libspots_signal through its C ABI, encrypted on-disk stores) and WASM builds, talk
// through the running gateway and key server: prekey publishing, gated bundle fetches, Signal
// DMs with multi-device fan-out, community shares over Signal, epoch-scheme and sender-chain
// messages, a hard rotation that removes a member and a soft rotation with its grace window.
// Every step checks what it expects and throws otherwise, so the demo is also a test.
import { asRole, closePools } from "../_shared/db.ts";
import { core } from "../_shared/wasm.ts";
import {
  admin,
  b64,
  type Call,
  call,
  currentEpoch,
  env,
  epochRow,
  newUser,
  shareBody,
  unb64,
  type User,
} from "../tests/support.ts";
import { nativeCoreVersion, NativeDevice } from "./native_device.ts";

type Log = (line: string) => void;

/** What both builds offer (the WASM `Device` and the native `NativeDevice`, same shapes). */
type Device = Pick<
  NativeDevice,
  | "ensureReady"
  | "processBundle"
  | "encrypt"
  | "decrypt"
  | "communityApplyEpochs"
  | "communityRotate"
  | "communityStartSenderChain"
  | "communityOpenShare"
  | "communityStartUsing"
  | "communityEncrypt"
  | "communityDecrypt"
>;

/** A simulated device: a person's phone or laptop, native or WASM. */
type Member = {
  name: string;
  user: User;
  agentId: string;
  deviceId: number;
  kind: "native" | "wasm";
  device: Device;
  free(): void;
};

const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array) => new TextDecoder().decode(b);

function expect(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Error(`demo check failed: ${what}`);
}

function ok(res: Call, what: string): Call {
  expect(res.status === 200, `${what}: HTTP ${res.status} ${res.text}`);
  return res;
}

export type Outcome = {
  dmsDelivered: number;
  communityMessagesRead: number;
  sharesOpened: number;
  refusals: string[];
};

export async function runScenario(log: Log, workDir: string): Promise<Outcome> {
  // Row-level-security reads and writes go in as `authenticator` assuming `authenticated`, as
  // PostgREST does for the app.
  Deno.env.set("SUPABASE_DB_URL", env("AUTHENTICATOR_DATABASE_URL"));
  try {
    return await scenario(log, workDir);
  } finally {
    await closePools();
  }
}

async function scenario(log: Log, workDir: string): Promise<Outcome> {
  const outcome: Outcome = {
    dmsDelivered: 0,
    communityMessagesRead: 0,
    sharesOpened: 0,
    refusals: [],
  };
  const now = () => Date.now();

  const health = ok(await call("health"), "health");
  expect(health.body.self_check.ok, "the gateway's WASM self-check passes");
  log(`gateway ${env("GATEWAY_URL")}: core ${health.body.core_version}, WASM self-check passed`);
  log(`native library: core ${nativeCoreVersion()}`);

  // --- People and devices -------------------------------------------------------------------
  const [alice, bob, carol] = [
    await newUser("alice"),
    await newUser("bob"),
    await newUser("carol"),
  ];
  const storeKey = crypto.getRandomValues(new Uint8Array(32));
  const actor = (
    name: string,
    user: User,
    deviceId: number,
    kind: "native" | "wasm",
  ): Member => {
    const agentId = `${user.tag}-agent`;
    if (kind === "native") {
      const device = NativeDevice.open(`${workDir}/${name}.db`, storeKey, agentId, deviceId);
      return { name, user, agentId, deviceId, kind, device, free: () => device.close() };
    }
    const device = core.Device.create(agentId, deviceId);
    return { name, user, agentId, deviceId, kind, device, free: () => device.free() };
  };
  const alicePhone = actor("alice-phone", alice, 1, "native");
  const aliceLaptop = actor("alice-laptop", alice, 2, "wasm");
  const bobPhone = actor("bob-phone", bob, 1, "wasm");
  const bobTablet = actor("bob-tablet", bob, 2, "native");
  const carolPhone = actor("carol-phone", carol, 1, "wasm");
  const everyone = [alicePhone, aliceLaptop, bobPhone, bobTablet, carolPhone];

  for (const a of everyone) {
    const ready = a.device.ensureReady(now());
    const published = ok(
      await call("prekeys/publish", {
        jwt: a.user.jwt,
        body: { agent_id: a.agentId, device_id: a.deviceId, upload: JSON.parse(ready.upload) },
      }),
      `${a.name} publishes`,
    );
    expect(!published.body.drift, `${a.name}: published keys match the device`);
    log(
      `${a.name} (${a.kind}, ${a.agentId}.${a.deviceId}) published its prekeys ` +
        `(${published.body.one_time_inserted} one-time bundles + a last-resort bundle)`,
    );
  }

  // The app's backend creates the community (Alice owns it) and adds Bob and Carol.
  const [community] = await admin()`insert into public.communities (name, created_by)
    values ('hiking club (demo)', ${alice.id}) returning id`;
  const communityId = community.id as string;
  for (const u of [bob, carol]) {
    await admin()`insert into public.community_members (community_id, user_id, role)
      values (${communityId}, ${u.id}, 'member')`;
  }
  log(`community ${communityId}: Alice (owner), Bob and Carol; key server epoch 1 opened`);

  // --- Eligibility: nobody hands out prekeys to strangers ------------------------------------
  const stranger = await newUser("stranger");
  const strangerDevice = actor("stranger", stranger, 1, "wasm");
  ok(
    await call("prekeys/publish", {
      jwt: stranger.jwt,
      body: {
        agent_id: strangerDevice.agentId,
        device_id: 1,
        upload: JSON.parse(strangerDevice.device.ensureReady(now()).upload),
      },
    }),
    "stranger publishes",
  );
  const probe = (target: string) =>
    call("prekeys/fetch", {
      jwt: stranger.jwt,
      body: {
        agent_id: strangerDevice.agentId,
        device_id: 1,
        target_agent_id: target,
        target_device_id: "all",
      },
    });
  const [toAlice, toNobody] = [await probe(alice.tag + "-agent"), await probe("no-such-agent")];
  expect(
    toAlice.status === 404 && toAlice.text === toNobody.text,
    "refusals are indistinguishable",
  );
  outcome.refusals.push("stranger fetch");
  log(
    `a stranger asking for Alice's prekeys gets ${toAlice.status} ${toAlice.body.error.code}, byte-identical to a missing agent`,
  );

  // --- Direct messages with multi-device fan-out ---------------------------------------------
  /** Fetches `target`'s bundles (one device or all) and starts sessions with them. */
  const connect = async (from: Member, target: Member, device: number | "all" = "all") => {
    const fetched = ok(
      await call("prekeys/fetch", {
        jwt: from.user.jwt,
        body: {
          agent_id: from.agentId,
          device_id: from.deviceId,
          target_agent_id: target.agentId,
          target_device_id: device,
        },
      }),
      `${from.name} fetches ${target.agentId} bundles`,
    );
    for (const b of fetched.body.bundles) {
      from.device.processBundle(target.agentId, b.device_id, b.bundle, now());
    }
    return fetched.body.bundles.map((b: { device_id: number; kind: string }) =>
      `${b.device_id}:${b.kind}`
    );
  };

  const send = async (from: Member, to: Member, message: string) => {
    const envelopes = from.device.encrypt(to.agentId, "all", text(message), now());
    ok(
      await call("dm/send", {
        jwt: from.user.jwt,
        body: {
          agent_id: from.agentId,
          device_id: from.deviceId,
          envelopes: envelopes.map((m) => ({
            to_agent_id: m.agentId,
            to_device_id: m.deviceId,
            message_type: m.messageType,
            body: b64(m.body),
          })),
        },
      }),
      `${from.name} sends`,
    );
    return envelopes.map((m) =>
      `${
        m.agentId === to.agentId ? to.user.tag.split("-")[0] : "own"
      }.${m.deviceId}(type ${m.messageType})`
    );
  };

  const receive = async (a: Member, expected: string) => {
    const inbox = ok(
      await call(`dm/inbox?agent_id=${a.agentId}&device_id=${a.deviceId}`, { jwt: a.user.jwt }),
      `${a.name} inbox`,
    );
    expect(inbox.body.envelopes.length === 1, `${a.name} has one envelope`);
    const [env] = inbox.body.envelopes;
    const opened = a.device.decrypt(
      env.from_agent_id,
      env.from_device_id,
      env.message_type,
      unb64(env.body),
      now(),
    );
    expect(read(opened.plaintext) === expected, `${a.name} reads "${expected}"`);
    ok(
      await call("dm/ack", {
        jwt: a.user.jwt,
        body: { agent_id: a.agentId, device_id: a.deviceId, ids: [env.id] },
      }),
      `${a.name} acks`,
    );
    outcome.dmsDelivered++;
    log(
      `  ${a.name} (${a.kind}) decrypted "${
        read(opened.plaintext)
      }" from ${env.from_agent_id}.${env.from_device_id}`,
    );
  };

  log(
    `alice-phone fetched Bob's bundles [${await connect(
      alicePhone,
      bobPhone,
    )}] and her laptop's [${await connect(alicePhone, aliceLaptop, 2)}]`,
  );
  log(
    `alice-phone -> Bob: one Signal message per device: ${await send(
      alicePhone,
      bobPhone,
      "Hi Bob, hike on Saturday?",
    )}`,
  );
  for (const a of [bobPhone, bobTablet, aliceLaptop]) await receive(a, "Hi Bob, hike on Saturday?");

  // Bob answers from his tablet (native): his phone gets a copy, both of Alice's devices get it.
  log(
    `bob-tablet fetched Alice's laptop [${await connect(
      bobTablet,
      aliceLaptop,
      2,
    )}] and his phone [${await connect(bobTablet, bobPhone, 1)}]`,
  );
  log(`bob-tablet -> Alice: ${await send(bobTablet, alicePhone, "Yes! 8am at the trailhead")}`);
  for (const a of [alicePhone, aliceLaptop, bobPhone]) {
    await receive(a, "Yes! 8am at the trailhead");
  }

  // --- Community: epoch 1, shares over Signal, epoch-scheme messages -------------------------
  /** Recipient devices with a fresh bundle each (sessions start inside the share). */
  const recipientsFor = async (from: Member, list: Member[]) => {
    const out = [];
    for (const m of list) {
      const fetched = ok(
        await call("prekeys/fetch", {
          jwt: from.user.jwt,
          body: {
            agent_id: from.agentId,
            device_id: from.deviceId,
            target_agent_id: m.agentId,
            target_device_id: m.deviceId,
          },
        }),
        `${from.name} fetches ${m.name}`,
      );
      out.push({
        agentId: m.agentId,
        deviceId: m.deviceId,
        bundle: fetched.body.bundles[0].bundle,
      });
    }
    return out;
  };
  const postShares = (from: Member, keyId: number, shares: core.ShareRowJs[]) =>
    call("community-keys/shares", {
      jwt: from.user.jwt,
      body: shareBody(from, communityId, keyId, shares),
    });
  const openedShares = new Map<string, Set<string>>();
  const openShares = async (m: Member, minKeyId: number) => {
    const mine = ok(
      await call(
        `community-keys/mine?agent_id=${m.agentId}&device_id=${m.deviceId}` +
          `&community_id=${communityId}&min_key_id=${minKeyId}`,
        { jwt: m.user.jwt },
      ),
      `${m.name} fetches its shares`,
    );
    m.device.communityApplyEpochs(communityId, [await currentEpoch(communityId)]);
    const opened = [];
    const seen = openedShares.get(m.name) ?? new Set<string>();
    openedShares.set(m.name, seen);
    for (const s of mine.body.shares) {
      if (seen.has(s.id)) continue;
      seen.add(s.id);
      const share = m.device.communityOpenShare({
        fromAgentId: s.from_agent_id,
        fromDeviceId: s.from_device_id,
        communityId,
        keyId: s.key_id,
        encryptionType: "signal_protocol",
        shareKind: s.share_kind,
        messageType: s.message_type,
        body: unb64(s.encrypted_share),
      }, now());
      outcome.sharesOpened++;
      opened.push(`${share.shareKind}(epoch ${share.keyId}) from ${nameOf(share.fromAgentId)}`);
    }
    return opened;
  };
  const nameOf = (agentId: string) => agentId.split("-")[0];
  /** Stores a community message the way the app does through PostgREST: an insert under the
   * member's own claims, which row-level security checks (membership, device, open epoch). */
  const post = async (m: Member, message: string) => {
    const row = m.device.communityEncrypt(communityId, text(message), now());
    await asRole(
      "authenticated",
      { sub: m.user.id, role: "authenticated" },
      (sql) =>
        sql`insert into public.community_message_blobs (community_id, key_id, sender_user_id,
            sender_agent_id, sender_device_id, sender_chain_id, sender_chain_iteration, ciphertext)
          values (${communityId}, ${row.keyId}, ${m.user.id}, ${m.agentId}, ${m.deviceId},
            ${row.chainId}, ${row.iteration}, ${row.blob})`,
    );
    const scheme = row.chainId === null
      ? "epoch scheme (AES-256-GCM)"
      : `sender chain ${row.chainId} iteration ${row.iteration} (signed)`;
    log(`  ${m.name} posted "${message}" in epoch ${row.keyId}, ${scheme}: one ciphertext for all`);
  };
  /** Reads the newest blob visible to `m` (row-level security decides) and decrypts it. */
  const readLatest = async (m: Member, expected: string) => {
    const rows = await asRole(
      "authenticated",
      { sub: m.user.id, role: "authenticated" },
      (sql) =>
        sql`select sender_agent_id, sender_device_id, ciphertext from public.community_message_blobs
          where community_id = ${communityId} order by created_at desc limit 1`,
    );
    expect(rows.length === 1, `${m.name} sees the blob`);
    const got = m.device.communityDecrypt(
      communityId,
      rows[0].sender_agent_id,
      rows[0].sender_device_id,
      new Uint8Array(rows[0].ciphertext),
      now(),
    );
    expect(
      got.kind === "message" && read(got.plaintext) === expected,
      `${m.name} reads "${expected}"`,
    );
    outcome.communityMessagesRead++;
    log(
      `  ${m.name} (${m.kind}) read "${expected}" (epoch ${
        got.kind === "message" ? got.keyId : "?"
      })`,
    );
  };

  const readAll = async (list: Member[], message: string) => {
    for (const m of list) await readLatest(m, message);
  };
  const openAll = async (list: Member[], minKeyId: number, startUsing?: number) => {
    for (const m of list) {
      log(`  ${m.name} (${m.kind}) opened ${await openShares(m, minKeyId)}`);
      if (startUsing) m.device.communityStartUsing(communityId, startUsing);
    }
  };

  // Epoch 1 is the community's first: Alice's laptop draws its key for the server's row.
  const members1 = [alicePhone, bobPhone, bobTablet, carolPhone];
  const rotation1 = aliceLaptop.device.communityRotate(
    communityId,
    await currentEpoch(communityId),
    await recipientsFor(aliceLaptop, members1),
    now(),
  );
  ok(await postShares(aliceLaptop, 1, rotation1.shares), "epoch 1 shares");
  log(
    `alice-laptop drew the key of epoch 1 (id ${rotation1.epoch.epochId}) and sealed it for ` +
      `${rotation1.shares.length} devices as Signal messages (her own phone included)`,
  );
  await openAll(members1, 1, 1);
  await post(aliceLaptop, "Welcome to the hiking club!");
  await readAll(members1, "Welcome to the hiking club!");

  // A plaintext key never gets in: the gateway refuses a share that is not a Signal message.
  const plaintext = await postShares(aliceLaptop, 1, [{
    ...rotation1.shares[0],
    body: text(JSON.stringify({ epoch_key: "00".repeat(32) })),
  }]);
  expect(plaintext.status === 422, `a plaintext share is refused (${plaintext.status})`);
  outcome.refusals.push("plaintext share");
  log(
    `a share that is not a Signal message is refused: ${plaintext.status} ${plaintext.body.error.code}`,
  );

  // --- Sender chains: Bob's tablet signs its messages; no other member can forge them --------
  const chainReaders = [alicePhone, aliceLaptop, bobPhone, carolPhone];
  const seeds = bobTablet.device.communityStartSenderChain(
    communityId,
    1,
    await recipientsFor(bobTablet, chainReaders),
    now(),
  );
  ok(await postShares(bobTablet, 1, seeds), "sender-chain seeds");
  log(
    `bob-tablet started its sender chain in epoch 1 and shared the seed with ${seeds.length} devices`,
  );
  await openAll(chainReaders, 1);
  await post(bobTablet, "Bringing snacks for everyone");
  await readAll(chainReaders, "Bringing snacks for everyone");

  // --- Rotations go through the key server, which names the devices to share with -----------
  const byAddress = new Map(everyone.map((m) => [`${m.agentId}.${m.deviceId}`, m]));
  /** Alice's laptop asks the key server for a new epoch, draws its key and shares it over
   * Signal with every device the server names (all current members' devices but itself). */
  const rotate = async (kind: "hard" | "soft", extra = {}) => {
    const answer = ok(
      await call("community-keys/rotate", {
        jwt: alice.jwt,
        body: {
          agent_id: aliceLaptop.agentId,
          device_id: aliceLaptop.deviceId,
          community_id: communityId,
          kind,
          ...extra,
        },
      }),
      `${kind} rotation`,
    );
    const named: Member[] = answer.body.recipients
      .map((r: { agent_id: string; device_id: number }) =>
        byAddress.get(`${r.agent_id}.${r.device_id}`)
      )
      .filter((m: Member | undefined) => m && m !== aliceLaptop);
    const rotation = aliceLaptop.device.communityRotate(
      communityId,
      epochRow(answer.body.epoch),
      named.map((m) => ({ agentId: m.agentId, deviceId: m.deviceId })),
      now(),
    );
    ok(await postShares(aliceLaptop, rotation.epoch.keyId, rotation.shares), "epoch shares");
    return { answer, rotation, named };
  };

  // --- Hard rotation: Carol leaves; she gets nothing of epoch 2 ------------------------------
  await admin()`update public.community_members set removed_at = now()
    where community_id = ${communityId} and user_id = ${carol.id}`;
  const { rotation: rotation2, named: members2 } = await rotate("hard");
  expect(!members2.includes(carolPhone), "the removed member is no recipient");
  log(
    `Carol was removed; hard rotation to epoch ${rotation2.epoch.keyId}: the key server named ` +
      `[${members2.map((m) => m.name)}] (none of Carol's devices) and the new key went to them`,
  );
  const toCarol = await postShares(aliceLaptop, 2, [{
    ...rotation2.shares[0],
    toAgentId: carolPhone.agentId,
  }]);
  expect(toCarol.status === 409, "no share of the new epoch for a removed member");
  outcome.refusals.push("share to removed member");
  log(`  a share of epoch 2 for Carol is refused: ${toCarol.status} ${toCarol.body.error.code}`);
  await openAll(members2, 2, 2);
  await post(aliceLaptop, "Carol moved away; new key for epoch 2");
  await readAll(members2, "Carol moved away; new key for epoch 2");
  const carolSees = await asRole(
    "authenticated",
    { sub: carol.id, role: "authenticated" },
    (sql) =>
      sql`select count(*)::int as n from public.community_message_blobs where community_id = ${communityId}`,
  );
  expect(carolSees[0].n === 0, "a removed member reads no blobs");
  // Even with the ciphertext in hand (a leaked backup, say), her device has no epoch-2 key.
  const [leaked] = await admin()`select ciphertext from public.community_message_blobs
    where community_id = ${communityId} and key_id = 2 limit 1`;
  let carolError = "";
  try {
    carolPhone.device.communityDecrypt(
      communityId,
      aliceLaptop.agentId,
      aliceLaptop.deviceId,
      new Uint8Array(leaked.ciphertext),
      now(),
    );
  } catch (error) {
    carolError = (error as { code?: string }).code ?? String(error);
  }
  expect(carolError !== "", "a removed member cannot decrypt the new epoch");
  outcome.refusals.push("removed member reads");
  log(
    `  Carol reads ${carolSees[0].n} blobs now (membership-gated); given the epoch-2 ciphertext ` +
      `anyway, her device refuses it (${carolError})`,
  );

  // --- Soft rotation: epoch 3 with a grace window; epoch 2 still accepted meanwhile ----------
  const { answer: soft, named: members3 } = await rotate("soft", { grace_seconds: 3600 });
  log(
    `soft rotation to epoch 3 with a one-hour grace window (until ${soft.body.epoch.grace_until})`,
  );
  // Bob's tablet has not picked up its share yet: it still sends in epoch 2, which stays open.
  await post(bobTablet, "Still on the old key, that's fine");
  await readAll([aliceLaptop, alicePhone], "Still on the old key, that's fine");
  await openAll(members3, 3, 3);
  await post(bobPhone, "Now on epoch 3");
  await readAll([aliceLaptop, alicePhone, bobTablet], "Now on epoch 3");

  for (const a of [...everyone, strangerDevice]) a.free();
  return outcome;
}
