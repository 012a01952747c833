// The two eligibility rules agree: the core's policy (WASM evaluateEligibility, which decides
// whether the gateway hands bundles out) and the database's verdict
// (keyserver.facts_allow_contact, which decides whether keyserver.gateway_prekey_fetch claims).
// A prekey fetch claims on the database's verdict before the policy runs, so a disagreement
// would either burn a one-time key (policy stricter) or never happen to matter (the database
// stricter); this pins them to the same answer on every combination of facts.
import assert from "node:assert/strict";
import { core } from "../_shared/wasm.ts";
import type { EligibilityFacts } from "../_shared/wasm/spots_crypto_wasm.d.ts";
import { admin, closeAdmin } from "./support.ts";

type Facts = EligibilityFacts;

function everyCombination(): Facts[] {
  const connections = [
    null,
    { entanglement_score: 0.49, compatibility_score: 0.49 },
    { entanglement_score: 0.5, compatibility_score: 0 },
    { entanglement_score: 0, compatibility_score: 0.5 },
    { entanglement_score: 0.9, compatibility_score: 0.9 },
  ];
  const all: Facts[] = [];
  for (const blockedByCaller of [false, true]) {
    for (const blockedByTarget of [false, true]) {
      for (const sameOwner of [false, true]) {
        for (const shared of [[], ["c0c0c0c0-0000-4000-8000-000000000001"]]) {
          for (const connection of connections) {
            for (const invite of [false, true]) {
              for (const viaInvite of [false, true]) {
                all.push({
                  same_owner: sameOwner,
                  blocked_by_caller: blockedByCaller,
                  blocked_by_target: blockedByTarget,
                  shared_communities: shared,
                  connection,
                  invite: { presented: invite, valid: invite },
                  contact_via_invite: viaInvite,
                  thresholds: { min_entanglement_score: 0.5, min_compatibility_score: 0.5 },
                });
              }
            }
          }
        }
      }
    }
  }
  return all;
}

Deno.test("the core's policy and the database's verdict agree on every combination of facts", async () => {
  const cases = everyCombination();
  // The database sees the facts with the target's owner (present: the target exists).
  const documents = cases.map((facts) => ({ ...facts, target_user_id: crypto.randomUUID() }));
  try {
    const rows =
      await admin()`select d.n::integer as n, keyserver.facts_allow_contact(d.doc) as allowed
      from jsonb_array_elements(${JSON.stringify(documents)}::text::jsonb) with ordinality d(doc, n)
      order by d.n`;
    assert.equal(rows.length, cases.length);
    let allowedCount = 0;
    cases.forEach((facts, i) => {
      const policy = core.evaluateEligibility(facts).allowed;
      assert.equal(rows[i].allowed, policy, `facts ${JSON.stringify(facts)}`);
      if (policy) allowedCount++;
    });
    // Both answers occur, so the comparison is not between two constant rules.
    assert.ok(allowedCount > 0 && allowedCount < cases.length);
  } finally {
    await closeAdmin();
  }
});

Deno.test("without a target (a missing agent) the database refuses whatever else the facts say", async () => {
  try {
    const [row] = await admin()`select keyserver.facts_allow_contact(${
      JSON.stringify({ ...everyCombination().at(-1), target_user_id: null })
    }::text::jsonb) as allowed`;
    assert.equal(row.allowed, false);
  } finally {
    await closeAdmin();
  }
});
