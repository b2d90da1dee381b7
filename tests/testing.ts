// The one place tests get their test/assert functions from. JSR (@std/testing, @std/assert) is not
// reachable on our machines, so this wraps Deno's built-in test runner and node:assert/strict; moving
// to @std later changes this file only.

import assert from "node:assert/strict";

// lavapipe (Mesa's software Vulkan driver, what CI and machines without a GPU run on) compiles each
// kernel with LLVM at its first dispatch, and with an empty shader cache those compiles dominated the
// suite. GALLIVM_PERF=nopt skips LLVM's IR optimisation passes: the same kernels, compiled in about
// 60-75% of the CPU time; the tests' tiny tensors run no slower measurably (warm suite unchanged).
// Mesa reads it when the first adapter is opened, which no module does at import; the CLIs the tests
// spawn inherit it. An explicit GALLIVM_PERF (even empty) wins; GPU drivers ignore it.
try {
  if (Deno.env.get("GALLIVM_PERF") === undefined) Deno.env.set("GALLIVM_PERF", "nopt");
} catch { /* no env permission: the tests then run with LLVM's default optimisation */ }

export { assert };
// Assertion functions need explicit type annotations to narrow types (TS2775).
export const assertEquals: typeof assert.equal = assert.equal;
export const assertDeepEquals: typeof assert.deepEqual = assert.deepEqual;
export const assertOk: typeof assert.ok = assert.ok;

/**
 * A test that may use the GPU. WebGPU objects outlive a single test (one device per process), so
 * Deno's resource/op sanitizers are off for these.
 */
export function test(name: string, fn: (t: Deno.TestContext) => Promise<void> | void): void {
  Deno.test({ name, fn, sanitizeResources: false, sanitizeOps: false });
}

/** Asserts that fn throws an error whose message contains every fragment. */
export function assertThrowsMsg(fn: () => unknown, ...fragments: string[]): Error {
  let err: Error | undefined;
  try {
    fn();
  } catch (e) {
    err = e as Error;
  }
  if (!err) {
    throw new assert.AssertionError({ message: `expected an error mentioning ${fragments.join(", ")}` });
  }
  for (const f of fragments) {
    if (!err.message.includes(f)) {
      throw new assert.AssertionError({ message: `error message lacks '${f}':\n${err.message}` });
    }
  }
  return err;
}

/** Async form of assertThrowsMsg. */
export async function assertRejectsMsg(fn: () => Promise<unknown>, ...fragments: string[]): Promise<Error> {
  let err: Error | undefined;
  try {
    await fn();
  } catch (e) {
    err = e as Error;
  }
  if (!err) {
    throw new assert.AssertionError({ message: `expected a rejection mentioning ${fragments.join(", ")}` });
  }
  for (const f of fragments) {
    if (!err.message.includes(f)) {
      throw new assert.AssertionError({ message: `error message lacks '${f}':\n${err.message}` });
    }
  }
  return err;
}
