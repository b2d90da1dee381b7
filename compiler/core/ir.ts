// The tensor IR: a static graph of nodes with fixed shapes and dtypes.
//
// Every value in a model is a Node. Nodes are created through a Graph and are numbered in creation
// order, which is also a valid topological order (a node can only use nodes that already exist).
// Op semantics (shape rules, gradient rules) live in compiler/ops/*.ts and are looked up by name in
// compiler/registry.ts; this file knows nothing about particular ops.

import { getOp } from "../ops/registry.ts";

/** f32 is the compute type; f16/bf16 are storage types for (frozen) weights; i32/u32 for indices. */
export type DType = "f32" | "f16" | "bf16" | "i32" | "u32";
export type Shape = readonly number[];
export type Attrs = Readonly<Record<string, unknown>>;

/**
 * input: data fed every step (never differentiated).
 * param: a weight; `trainable` says whether it gets a gradient.
 * state: persistent non-trainable tensors the step updates in place (optimizer moments, running stats).
 * const: small data baked into the plan.
 * op: computed by a kernel.
 */
export type NodeKind = "input" | "param" | "state" | "const" | "op";

/** Initial values for params/state: a generator called once, or a typed array. */
export type Init = Float32Array | Int32Array | Uint32Array | Uint16Array | ((n: number) => Float32Array);

export class ShapeError extends Error {
  override name = "ShapeError";
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Bytes a tensor of this shape/dtype occupies on the GPU (16-bit types are packed 2 per u32 word). */
export function byteSize(shape: Shape, dtype: DType): number {
  const n = numel(shape);
  const raw = dtype === "f16" || dtype === "bf16" ? 2 * n : 4 * n;
  return Math.max(4, Math.ceil(raw / 4) * 4);
}

export function fmtShape(s: Shape): string {
  return `[${s.join(",")}]`;
}

export class Node {
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly op: string,
    readonly kind: NodeKind,
    readonly inputs: readonly Node[],
    readonly shape: Shape,
    readonly dtype: DType,
    readonly attrs: Attrs,
    readonly name: string | undefined,
    readonly trainable: boolean,
    readonly init: Init | undefined,
    /** Shapes/dtypes of extra outputs (saved for backward, e.g. argmax); read them with Graph.aux. */
    readonly auxSpecs: readonly TensorSpec[] = [],
    /**
     * Frozen params only: the streaming unit (e.g. one LLM layer's attention half) whose weights the
     * runtime can stream from disk instead of keeping resident. Their values come from a loader given
     * to compile(), not from `init`.
     */
    readonly streamGroup?: number,
  ) {}
  get size(): number {
    return numel(this.shape);
  }
  get rank(): number {
    return this.shape.length;
  }
  /** True for nodes whose storage outlives a step: inputs, params, state, constants. */
  get persistent(): boolean {
    return this.kind !== "op";
  }
  toString(): string {
    return `${this.name ?? this.op}#${this.id}${fmtShape(this.shape)}:${this.dtype}`;
  }
}

export interface TensorSpec {
  shape: Shape;
  dtype: DType;
}

/** What an op's shape rule returns: the main output, extra outputs, and an optional side effect. */
export interface OutSpec extends TensorSpec {
  aux?: TensorSpec[];
}

export class Graph {
  readonly nodes: Node[] = [];
  private readonly names = new Map<string, Node>();

  private add(
    op: string,
    kind: NodeKind,
    inputs: readonly Node[],
    spec: OutSpec,
    attrs: Attrs,
    opts: { name?: string; trainable?: boolean; init?: Init; streamGroup?: number } = {},
  ): Node {
    for (const d of spec.shape) {
      if (!Number.isInteger(d) || d < 0) {
        throw new ShapeError(`${op}: invalid shape ${fmtShape(spec.shape)} (dims must be integers >= 0)`);
      }
    }
    if (opts.name !== undefined) {
      if (this.names.has(opts.name)) throw new Error(`graph: name '${opts.name}' is used twice`);
    }
    const n = new Node(
      this,
      this.nodes.length,
      op,
      kind,
      inputs,
      [...spec.shape],
      spec.dtype,
      attrs,
      opts.name,
      opts.trainable ?? false,
      opts.init,
      spec.aux ?? [],
      opts.streamGroup,
    );
    this.nodes.push(n);
    if (opts.name !== undefined) this.names.set(opts.name, n);
    return n;
  }

  /** Data fed each step (images, labels, targets). Never differentiated. */
  input(name: string, shape: Shape, dtype: DType = "f32"): Node {
    return this.add("input", "input", [], { shape, dtype }, {}, { name });
  }

  /** A weight. Trainable by default; frozen params get no gradient and no optimizer state. */
  param(
    name: string,
    shape: Shape,
    opts: { trainable?: boolean; dtype?: DType; init?: Init; streamGroup?: number } = {},
  ): Node {
    const dtype = opts.dtype ?? "f32";
    const trainable = opts.trainable ?? true;
    if (opts.streamGroup !== undefined && (trainable || opts.init !== undefined)) {
      throw new ShapeError(
        `param '${name}': a streamed param must be frozen and take its values from the loader, not init`,
      );
    }
    if (trainable && dtype !== "f32") {
      throw new ShapeError(
        `param '${name}': trainable params must be f32 (got ${dtype}); store frozen ones in ${dtype}`,
      );
    }
    return this.add("param", "param", [], { shape, dtype }, {}, {
      name,
      trainable,
      init: opts.init,
      streamGroup: opts.streamGroup,
    });
  }

  /** Persistent, non-trainable tensor updated in place by side-effect ops (optimizer moments). */
  state(name: string, shape: Shape, opts: { dtype?: DType; init?: Init } = {}): Node {
    return this.add("state", "state", [], { shape, dtype: opts.dtype ?? "f32" }, {}, {
      name,
      init: opts.init,
    });
  }

  /** A constant tensor baked into the plan. */
  constant(
    data: Float32Array | Int32Array | Uint32Array | number[],
    shape: Shape,
    dtype: DType = "f32",
  ): Node {
    if (data.length !== numel(shape)) {
      throw new ShapeError(`constant: ${data.length} values do not fill shape ${fmtShape(shape)}`);
    }
    const arr = Array.isArray(data)
      ? (dtype === "i32"
        ? Int32Array.from(data)
        : dtype === "u32"
        ? Uint32Array.from(data)
        : Float32Array.from(data))
      : data;
    return this.add("const", "const", [], { shape, dtype }, {}, { init: arr });
  }

  /** Apply a registered op. Its shape rule validates inputs and throws a ShapeError naming the op. */
  apply(op: string, inputs: readonly Node[], attrs: Attrs = {}, name?: string): Node {
    const def = getOp(op);
    for (const x of inputs) {
      if (!(x instanceof Node)) throw new ShapeError(`${op}: an input is not a Node (got ${typeof x})`);
      if (x.graph !== this) throw new ShapeError(`${op}: input ${x} belongs to another graph`);
    }
    const spec = def.infer(inputs, attrs);
    return this.add(op, "op", inputs, spec, attrs, { name });
  }

  /** The k-th extra output of a multi-output node (e.g. the argmax saved by max). Not differentiable. */
  aux(node: Node, k: number): Node {
    const spec = node.auxSpecs[k];
    if (!spec) throw new ShapeError(`aux: ${node} has no extra output ${k}`);
    return this.add("aux", "op", [node], spec, { index: k });
  }

  byName(name: string): Node {
    const n = this.names.get(name);
    if (!n) throw new Error(`graph: no node named '${name}'`);
    return n;
  }

  get params(): Node[] {
    return this.nodes.filter((n) => n.kind === "param");
  }
  get trainableParams(): Node[] {
    return this.nodes.filter((n) => n.kind === "param" && n.trainable);
  }
}

/** Throws a ShapeError in the standard form: op, what it got, what it expected. */
export function shapeFail(op: string, inputs: readonly Node[], expected: string): never {
  const got = inputs.map((x) => `${fmtShape(x.shape)}:${x.dtype}`).join(", ");
  throw new ShapeError(`${op}: got inputs (${got}); expected ${expected}`);
}

/** Normalises a possibly negative axis; throws naming the op when out of range. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new ShapeError(`${op}: axis ${axis} is out of range for rank ${rank}`);
  }
  return a;
}

/** Row-major strides. */
export function strides(shape: Shape): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/** NumPy-style broadcast of two shapes; undefined when incompatible. */
export function broadcastShapes(a: Shape, b: Shape): number[] | undefined {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return undefined;
    out.push(da === 1 ? db : da);
  }
  return out;
}
