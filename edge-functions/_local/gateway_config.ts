// Where the local gateway listens and with how many isolates; read by gateway.ts and by each
// of its workers, from the same environment.

export const port = Number(Deno.env.get("SPOTS_GATEWAY_PORT") ?? "54321");

const requested = Number(Deno.env.get("SPOTS_GATEWAY_WORKERS") ?? "2");
if (!(Number.isInteger(requested) && requested >= 1 && requested <= 16)) {
  throw new RangeError("SPOTS_GATEWAY_WORKERS must be 1 to 16");
}
/** SO_REUSEPORT spreads connections over the workers' sockets only on Linux. */
export const workers = Deno.build.os === "linux" ? requested : 1;
