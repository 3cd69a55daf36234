import assert from "node:assert/strict";
import { test } from "node:test";
import { ADDED_ENV, commandEnv } from "./command-env.ts";

test("a started command gets the operator's environment: not the malloc settings serve added for itself", () => {
  const env = {
    PATH: "/bin",
    MALLOC_ARENA_MAX: "1",
    MALLOC_TRIM_THRESHOLD_: "65536",
    [ADDED_ENV]: "MALLOC_ARENA_MAX",
  };
  // MALLOC_TRIM_THRESHOLD_ was the operator's own (not listed): it stays
  assert.deepEqual(commandEnv(undefined, env), { PATH: "/bin", MALLOC_TRIM_THRESHOLD_: "65536" });
  // the server's block may set one again
  assert.deepEqual(commandEnv({ MALLOC_ARENA_MAX: "4", A: "b" }, env), {
    PATH: "/bin",
    MALLOC_TRIM_THRESHOLD_: "65536",
    MALLOC_ARENA_MAX: "4",
    A: "b",
  });
  assert.equal(env.MALLOC_ARENA_MAX, "1", "the process's own environment is left alone");
  // outside serve (the library): the environment as it is, plus the additions
  assert.deepEqual(commandEnv({ A: "b" }, { PATH: "/bin" }), { PATH: "/bin", A: "b" });
});
