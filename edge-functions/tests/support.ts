// Test helpers: where the running stack is (from `./x stack env`) and the vectors.

export function env(name: string): string {
  const value = Deno.env.get(name);
  if (!value) {
    throw new Error(
      `${name} is not set: run the tests through ./x test or eval "$(./x stack env)"`,
    );
  }
  return value;
}

export function gatewayUrl(path: string): string {
  return `${env("GATEWAY_URL")}/functions/v1/${path}`;
}

export function hex(text: string): Uint8Array {
  if (text.length % 2 !== 0) throw new Error("odd-length hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export async function vector(name: string): Promise<Record<string, unknown>> {
  const url = new URL(`../../tests/vectors/libsignal-v0.73.3/${name}`, import.meta.url);
  return JSON.parse(await Deno.readTextFile(url));
}
