// Where the local gateway listens and with how many isolates; read by gateway.ts and by each
// of its workers, from the same environment.

import { intSetting } from "../_shared/settings.ts";

export const port = intSetting("SPOTS_GATEWAY_PORT", 54321, 1, 65535);

/** SO_REUSEPORT spreads connections over the workers' sockets only on Linux. */
export const workers = Deno.build.os === "linux"
  ? intSetting("SPOTS_GATEWAY_WORKERS", 2, 1, 16)
  : 1;
