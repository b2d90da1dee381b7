// The one place tests get their test/assert functions from. JSR (@std/testing, @std/assert) is not
// reachable on our machines, so this wraps Deno's built-in test runner and node:assert/strict; moving
// to @std later changes this file only.

import assert from "node:assert/strict";

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
