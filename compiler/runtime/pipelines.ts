// Compute pipelines shared by every Executable on a device. Kernels bake their shapes into the WGSL,
// so the same text recurs whenever a graph (or an op at the same shape) is compiled again: a model's
// train and eval executables, tests that compare fused with unfused plans, a resumed run. Creating
// the pipeline again would repeat the WGSL validation and translation, and on software adapters
// (lavapipe) the LLVM compile of the kernel at its first dispatch — seconds for a large unrolled one.
// The key is the WGSL text and entry point: the bind group layout is reflected from the text, so the
// same text always means the same layout. The cache holds pipelines weakly: one lives as long as an
// executable uses it or the garbage collector has not yet come by (holding hundreds of them strongly
// to the end of a process made lavapipe corrupt its heap at exit).

import type { ShaderInfo } from "./reflect.ts";

/** Most entries kept per device; the least recently used go first (executables keep their own). */
const MAX_PIPELINES = 1024;

const byDevice = new WeakMap<GPUDevice, Map<string, WeakRef<GPUComputePipeline>>>();

function cacheOf(device: GPUDevice): Map<string, WeakRef<GPUComputePipeline>> {
  let c = byDevice.get(device);
  if (!c) byDevice.set(device, c = new Map());
  return c;
}

/**
 * Pipelines for one build. Hits come from the device's shared cache; pipelines made here join it
 * only on `commit()`, once the build's error scopes came back clean, so an invalid pipeline is never
 * handed to a later build (whose error scopes would not see the error).
 */
export class PipelineBuilder {
  private readonly shared: Map<string, WeakRef<GPUComputePipeline>>;
  private readonly made = new Map<string, GPUComputePipeline>();
  private readonly modules = new Map<string, GPUShaderModule>();

  /** A builder for one build on `device`. */
  constructor(private readonly device: GPUDevice) {
    this.shared = cacheOf(device);
  }

  /**
   * The pipeline of a kernel: the shared one if this text was built before, else a new one. `node`
   * names the graph node in a WGSL compile error.
   */
  async get(
    code: string,
    entry: string,
    label: string,
    info: ShaderInfo,
    node = "",
  ): Promise<GPUComputePipeline> {
    const key = entry + "\u0000" + code;
    const made = this.made.get(key);
    if (made) return made;
    const ref = this.shared.get(key);
    const hit = ref?.deref();
    if (ref) this.shared.delete(key); // re-added last (most recently used), or dropped when collected
    if (ref && hit) {
      this.shared.set(key, ref);
      return hit;
    }
    const dev = this.device;
    let mod = this.modules.get(code);
    if (!mod) {
      mod = dev.createShaderModule({ code, label });
      const ci = await mod.getCompilationInfo();
      const errs = ci.messages.filter((m) => m.type === "error");
      if (errs.length) {
        throw new Error(
          `kernel ${label}${node ? ` (${node})` : ""}: WGSL compile error:\n` +
            errs.map((m) => `  line ${m.lineNum}: ${m.message}`).join("\n") + "\n" + numbered(code),
        );
      }
      this.modules.set(code, mod);
    }
    const layout = dev.createBindGroupLayout({
      label,
      entries: info.bindings.map((b) => ({
        binding: b.binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: b.kind },
      })),
    });
    const pipe = dev.createComputePipeline({
      label,
      layout: dev.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module: mod, entryPoint: entry },
    });
    this.made.set(key, pipe);
    return pipe;
  }

  /** Shares the pipelines this build made with later builds on the device. */
  commit(): void {
    for (const [key, pipe] of this.made) this.shared.set(key, new WeakRef(pipe));
    for (const key of this.shared.keys()) {
      if (this.shared.size <= MAX_PIPELINES) break;
      this.shared.delete(key);
    }
    this.made.clear();
  }
}

/** Number of pipelines the device's shared cache can hand out now (for tests). */
export function sharedPipelineCount(device: GPUDevice): number {
  return [...byDevice.get(device)?.values() ?? []].filter((r) => r.deref()).length;
}

function numbered(code: string): string {
  return code.split("\n").map((l, i) => `${String(i + 1).padStart(4)}| ${l}`).join("\n");
}
