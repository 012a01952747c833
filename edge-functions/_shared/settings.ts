// Whole-number settings from the environment, checked when an isolate starts: a typo must stop
// the gateway, not silently switch a limit or a defence off.

export function intSetting(name: string, fallback: number, min: number, max: number): number {
  const raw = Deno.env.get(name);
  const value = raw === undefined ? fallback : Number(raw);
  if (!(Number.isInteger(value) && value >= min && value <= max)) {
    throw new RangeError(`${name} must be a whole number from ${min} to ${max}`);
  }
  return value;
}
