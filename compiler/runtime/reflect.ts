// Shader reflection with wgsl_reflect: build bind group layouts from the WGSL itself and check that
// what the plan binds matches what the shader declares (names, count, read vs read_write).

// The package's "main" is a CommonJS build inside a "type": "module" package, so deno.json maps
// wgsl_reflect to its ES module file, and the types come from the package's declarations.
// @ts-types="npm:wgsl_reflect@1.6.0/types/index.d.ts"
import { WgslReflect } from "wgsl_reflect";

/** One buffer a shader declares in @group(0). */
export interface ShaderBinding {
  /** The WGSL variable's name (what a plan binds by). */
  name: string;
  /** Its @binding slot. */
  binding: number;
  /** The buffer binding type for the bind group layout. */
  kind: "storage" | "read-only-storage" | "uniform";
}

/** What reflection found in a compute shader. */
export interface ShaderInfo {
  /** The group-0 buffer bindings, in declaration order. */
  bindings: ShaderBinding[];
}

const cache = new Map<string, ShaderInfo>();

/** Parses a compute shader, checks it has the compute entry point `entry`; returns its group-0 bindings. */
export function reflectShader(code: string, entry: string, label: string): ShaderInfo {
  const key = entry + "\u0000" + code;
  const hit = cache.get(key);
  if (hit) return hit;
  let r: WgslReflect;
  try {
    r = new WgslReflect(code);
  } catch (e) {
    throw new Error(`kernel ${label}: WGSL does not parse: ${(e as Error).message}`);
  }
  const fn = r.entry.compute.find((f) => f.name === entry);
  if (!fn) throw new Error(`kernel ${label}: no @compute entry point '${entry}'`);
  const groups = r.getBindGroups();
  if (groups.length > 1) throw new Error(`kernel ${label}: only @group(0) is supported`);
  const bindings: ShaderBinding[] = [];
  for (const v of groups[0] ?? []) {
    if (!v) continue;
    // resourceType 0 = uniform, 1 = storage (wgsl_reflect's ResourceType enum)
    const rt = v.resourceType as unknown as number;
    const kind = rt === 0
      ? "uniform"
      : rt === 1
      ? (v.access === "read" ? "read-only-storage" : "storage")
      : undefined;
    if (!kind) {
      throw new Error(`kernel ${label}: binding '${v.name}' is not a buffer (textures are unsupported)`);
    }
    bindings.push({ name: v.name, binding: v.binding, kind });
  }
  const info: ShaderInfo = { bindings };
  cache.set(key, info);
  return info;
}

/** Checks plan bindings against the shader: same names, nothing missing or extra, no illegal writes. */
export function checkBindings(
  label: string,
  info: ShaderInfo,
  bound: readonly { name: string; writable: boolean; what: string }[],
): void {
  const declared = new Map(info.bindings.map((b) => [b.name, b]));
  for (const b of bound) {
    const d = declared.get(b.name);
    if (!d) {
      throw new Error(
        `kernel ${label}: the plan binds '${b.name}' (${b.what}) but the shader declares only ` +
          `[${info.bindings.map((x) => x.name).join(", ")}]`,
      );
    }
    if (d.kind === "storage" && !b.writable) {
      throw new Error(
        `kernel ${label}: '${b.name}' is read_write in the shader but ${b.what} must not be written`,
      );
    }
  }
  const names = new Set(bound.map((b) => b.name));
  for (const d of info.bindings) {
    if (!names.has(d.name)) {
      throw new Error(`kernel ${label}: shader binding '${d.name}' is not bound by the plan`);
    }
  }
  if (names.size !== bound.length) throw new Error(`kernel ${label}: a binding name is bound twice`);
}
