// Adapter and device selection: ask for the adapter's real limits (the defaults are far lower than
// what a discrete GPU offers), print which adapter we run on, and explain what to install when there
// is none.

import type { LowerCtx } from "../../kernels/kernel.ts";

export class NoAdapterError extends Error {
  override name = "NoAdapterError";
}

export interface Gpu {
  device: GPUDevice;
  adapterName: string;
  features: Set<string>;
  limits: {
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxComputeWorkgroupsPerDimension: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxStorageBuffersPerShaderStage: number;
  };
  lowerCtx: LowerCtx;
}

const HOW_TO_GET_ONE = `No WebGPU adapter was found.
Deno's WebGPU needs a Vulkan, Metal or GL driver. Without a GPU, Mesa's software rasterizers work:
  Debian/Ubuntu:  sudo apt-get install -y mesa-vulkan-drivers   (lavapipe, Vulkan; has shader-f16)
  (libgl1-mesa-dri gives llvmpipe over GL as a fallback)
With an NVIDIA GPU, install the driver's Vulkan ICD (nvidia_icd.json) or set VK_DRIVER_FILES to it.`;

let cached: Promise<Gpu> | undefined;

/** The process-wide GPU, created on first use. Prints the adapter name to stderr once. */
export function getGpu(opts: { quiet?: boolean; powerPreference?: GPUPowerPreference } = {}): Promise<Gpu> {
  cached ??= openGpu(opts).catch((e) => {
    cached = undefined;
    throw e;
  });
  return cached;
}

/** Opens a new device (uncached); getGpu() is the shared one. */
export async function openGpu(opts: { quiet?: boolean; powerPreference?: GPUPowerPreference }): Promise<Gpu> {
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
  if (!opts.quiet) console.error(`webgpu adapter: ${adapterName}`);
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
