// Adapter and device selection: ask for the adapter's real limits (the defaults are far lower than
// what a discrete GPU offers), and explain what to install when there is none. The library prints
// nothing: a CLI that wants to say which adapter it runs on prints `Gpu.adapterName` itself.

import type { LowerCtx } from "../../kernels/kernel.ts";

/** No WebGPU adapter (or no `navigator.gpu`): the message says which driver to install. */
export class NoAdapterError extends Error {
  /** Always "NoAdapterError". */
  override name = "NoAdapterError";
}

/** An opened WebGPU device with the facts lowering needs about it. */
export interface Gpu {
  /** The device every executable compiled for this Gpu runs on. */
  device: GPUDevice;
  /** The adapter's description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)" or "NVIDIA H200". */
  adapterName: string;
  /** Features granted to the device (shader-f16, timestamp-query where the adapter has them). */
  features: Set<string>;
  /** The device's limits that planning and building check against (the adapter's maxima). */
  limits: {
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxComputeWorkgroupsPerDimension: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxStorageBuffersPerShaderStage: number;
  };
  /** @internal Lowering facts derived from the device (limits, f16 support, software adapter or not). */
  lowerCtx: LowerCtx;
}

/** Options of getGpu() and openGpu(). */
export interface GpuOptions {
  /** The adapter to ask for (default "high-performance"). */
  powerPreference?: GPUPowerPreference;
  /** @deprecated Ignored: the library never prints the adapter (CLIs print `Gpu.adapterName`). */
  quiet?: boolean;
}

const HOW_TO_GET_ONE = `No WebGPU adapter was found.
Deno's WebGPU needs a Vulkan, Metal or GL driver. Without a GPU, Mesa's software rasterizers work:
  Debian/Ubuntu:  sudo apt-get install -y mesa-vulkan-drivers   (lavapipe, Vulkan; has shader-f16)
  (libgl1-mesa-dri gives llvmpipe over GL as a fallback)
With an NVIDIA GPU, install the driver's Vulkan ICD (nvidia_icd.json) or set VK_DRIVER_FILES to it.`;

let cached: Promise<Gpu> | undefined;

/**
 * The process-wide GPU, opened on first use and shared by every compile() that is given no `gpu`
 * (the options of the first call win). Prints nothing; rejects with NoAdapterError without an adapter.
 */
export function getGpu(opts: GpuOptions = {}): Promise<Gpu> {
  cached ??= openGpu(opts).catch((e) => {
    cached = undefined;
    throw e;
  });
  return cached;
}

/** Opens a new device (uncached; getGpu() is the shared one). Prints nothing. */
export async function openGpu(opts: GpuOptions = {}): Promise<Gpu> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) throw new NoAdapterError(HOW_TO_GET_ONE);
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await navigator.gpu.requestAdapter({
      powerPreference: opts.powerPreference ?? "high-performance",
    });
  } catch (e) {
    throw new NoAdapterError(`${HOW_TO_GET_ONE}\n(requestAdapter failed: ${(e as Error).message})`);
  }
  if (!adapter) throw new NoAdapterError(HOW_TO_GET_ONE);
  const info = adapter.info;
  const adapterName = info.description ||
    [info.vendor, info.architecture, info.device].filter(Boolean).join(" ") ||
    "unknown adapter";
  const want: GPUFeatureName[] = ["shader-f16", "timestamp-query"];
  const requiredFeatures = want.filter((f) => adapter!.features.has(f));
  const al = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: al.maxStorageBufferBindingSize,
    maxBufferSize: al.maxBufferSize,
    maxComputeWorkgroupStorageSize: al.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: al.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: al.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: al.maxComputeWorkgroupSizeY,
    maxComputeWorkgroupsPerDimension: al.maxComputeWorkgroupsPerDimension,
    maxStorageBuffersPerShaderStage: al.maxStorageBuffersPerShaderStage,
  };
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  device.addEventListener("uncapturederror", (ev) => {
    console.error(`webgpu: uncaptured error: ${(ev as GPUUncapturedErrorEvent).error.message}`);
  });
  const l = device.limits;
  const limits = {
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
  };
  return {
    device,
    adapterName,
    features: new Set(device.features as unknown as Iterable<string>),
    limits,
    lowerCtx: {
      maxWorkgroupsPerDim: limits.maxComputeWorkgroupsPerDimension,
      maxWorkgroupStorage: limits.maxComputeWorkgroupStorageSize,
      maxInvocations: limits.maxComputeInvocationsPerWorkgroup,
      hasF16: device.features.has("shader-f16"),
      maxStorageBuffers: limits.maxStorageBuffersPerShaderStage,
      isSoftware: info.isFallbackAdapter || /llvmpipe|lavapipe|softpipe|swiftshader/i.test(adapterName),
    },
  };
}
