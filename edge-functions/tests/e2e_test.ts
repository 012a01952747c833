// End to end: the demo scenario (native and WASM devices through the gateway and the key
// server) as a test; every step of it checks its outcome.
import assert from "node:assert/strict";
import { runScenario } from "../demo/scenario.ts";
import { closeAdmin } from "./support.ts";

Deno.test("devices of both builds hold DMs, fan-out, community chat and rotations", async () => {
  const workDir = await Deno.makeTempDir({ prefix: "spots-e2e-" });
  const lines: string[] = [];
  try {
    const outcome = await runScenario((line) => lines.push(line), workDir);
    assert.equal(outcome.dmsDelivered, 6);
    assert.equal(outcome.communityMessagesRead, 16);
    assert.equal(outcome.sharesOpened, 14);
    assert.deepEqual(outcome.refusals, [
      "stranger fetch",
      "plaintext share",
      "share to removed member",
      "removed member reads",
    ]);
  } catch (error) {
    console.error(lines.join("\n"));
    throw error;
  } finally {
    await closeAdmin();
    await Deno.remove(workDir, { recursive: true });
  }
});
