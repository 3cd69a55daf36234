/**
 * The environment of the commands switchyard starts (`run`, `exec`): its own, with the user's
 * additions, minus what `switchyard serve` added for itself. `serve` runs with glibc malloc
 * settings of its own (src/cli.ts) and names the ones it added in SWITCHYARD_ADDED_ENV; a backend
 * started from it must get the environment the operator gave, not one malloc arena.
 */
export const ADDED_ENV = "SWITCHYARD_ADDED_ENV";

export function commandEnv(
  extra: Readonly<Record<string, string>> | undefined,
  env: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  const added = env[ADDED_ENV];
  if (added === undefined) return extra ? { ...env, ...extra } : env;
  const out: NodeJS.ProcessEnv = { ...env };
  for (const name of added.split(",")) delete out[name];
  delete out[ADDED_ENV];
  return extra ? Object.assign(out, extra) : out;
}
