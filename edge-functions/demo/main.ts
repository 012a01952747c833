// `./x demo`: runs the demo scenario against the running stack and prints what happened.
import { closeAdmin } from "../tests/support.ts";
import { runScenario } from "./scenario.ts";

const workDir = await Deno.makeTempDir({ prefix: "spots-demo-" });
const started = performance.now();
try {
  const outcome = await runScenario((line) => console.log(line), workDir);
  console.log(
    `\ndemo finished in ${((performance.now() - started) / 1000).toFixed(1)} s: ` +
      `${outcome.dmsDelivered} DMs delivered, ${outcome.sharesOpened} shares opened, ` +
      `${outcome.communityMessagesRead} community messages read, ` +
      `${outcome.refusals.length} refusals as expected (${outcome.refusals.join(", ")})`,
  );
} finally {
  await closeAdmin();
  await Deno.remove(workDir, { recursive: true });
}
