// One place that turns a kernel's buffers into both halves of its interface: the WGSL declarations
// (`@group(0) @binding(i) var<storage, …> name: array<type>;`, numbered in order) and the Binding list
// the plan resolves (compiler/lower/plan.ts), so the two cannot drift apart and no kernel numbers
// slots by hand. The runtime still checks every dispatch's bindings against the reflected shader
// (compiler/runtime/reflect.ts); slot numbers matter to nobody else, as bindings are matched by name.
//
//   const io = bind({ x: read(n.inputs[0]), dy: backward && read(n.inputs[1]), out: write(n) });
//   code = `${io.wgsl} …`; dispatch = { code, bindings: io.bindings, … };

import { Node } from "../compiler/core/ir.ts";
import { type Binding, type BufRef, storageType } from "./kernel.ts";

/** One storage buffer of a kernel: what it refers to, whether the kernel writes it, its element type. */
export interface BufferVar {
  ref: BufRef;
  access: "read" | "read_write";
  /** The WGSL element type of the `array<…>` (e.g. f32, i32, u32 for packed f16/bf16, vec4<f32>). */
  type: string;
}

/** A kernel's buffers by WGSL name, in binding order; a falsy entry is left out (e.g. an in-place input). */
export type BufferVars = Record<string, BufferVar | undefined | false | null>;

/** The declarations and bindings of a kernel's buffers (see bind). */
export interface ShaderIo {
  /** The WGSL declarations, one a line. */
  wgsl: string;
  /** The bindings that go with them, in the same order. */
  bindings: Binding[];
}

/** A node (a node's main storage) or a buffer reference. */
type Source = Node | BufRef;

/**
 * The element type of `src`: given, or the node's storage type (kernels/kernel.ts storageType). A
 * reference to anything but a node's main storage (aux, scratch, span) has no dtype here: name it.
 */
function elemType(src: Source, type: string | undefined, what: string): string {
  if (type) return type;
  const node = src instanceof Node ? src : "node" in src ? src.node : undefined;
  if (!node) throw new Error(`${what}(${JSON.stringify(Object.keys(src))}): give the WGSL element type`);
  return storageType(node.dtype);
}

function toRef(src: Source): BufRef {
  return src instanceof Node ? { node: src } : src;
}

/** A buffer the kernel only reads (`var<storage, read>`). */
export function read(src: Source, type?: string): BufferVar {
  return { ref: toRef(src), access: "read", type: elemType(src, type, "read") };
}

/** A buffer the kernel writes (`var<storage, read_write>`). */
export function write(src: Source, type?: string): BufferVar {
  return { ref: toRef(src), access: "read_write", type: elemType(src, type, "write") };
}

/** Declares `vars` as group-0 storage bindings 0, 1, … in order, and lists their bindings by name. */
export function bind(vars: BufferVars): ShaderIo {
  const used = Object.entries(vars).filter((e): e is [string, BufferVar] => !!e[1]);
  return {
    wgsl: used.map(([name, v], i) =>
      `@group(0) @binding(${i}) var<storage, ${v.access}> ${name}: array<${v.type}>;`
    ).join("\n"),
    bindings: used.map(([name, v]) => ({ name, ref: v.ref })),
  };
}
