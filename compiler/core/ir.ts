// The tensor IR: a static graph of nodes with fixed shapes and dtypes.
//
// Every value in a model is a Node. Nodes are created through a Graph and are numbered in creation
// order, which is also a valid topological order (a node can only use nodes that already exist).
// An op node carries the OpDef it was built with (shape rule, gradient rule, storage facts); the
// definitions of particular ops live in compiler/ops/<family>.ts and are collected in the typed table
// compiler/ops/table.ts. This file knows nothing about particular ops.

/** f32 is the compute type; f16/bf16 are storage types for (frozen) weights; i32/u32 for indices. */
export type DType = "f32" | "f16" | "bf16" | "i32" | "u32";
/** A tensor shape: one size per dimension, row-major. */
export type Shape = readonly number[];
/** Op attributes as a node stores them; OpNode<A> gives them their op's type back. */
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

/** A shape or dtype mismatch, thrown while a graph is built; the message names the op. */
export class ShapeError extends Error {
  /** Always "ShapeError". */
  override name = "ShapeError";
}

/** Number of elements of a tensor of this shape. */
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

/** A shape as text, e.g. `[2,3]` (for error messages). */
export function fmtShape(s: Shape): string {
  return `[${s.join(",")}]`;
}

/** One value of a graph: an input, a weight, a state tensor, a constant, or the result of an op. */
export class Node {
  /** Made by Graph (input, param, state, constant, apply, aux); not meant to be called directly. */
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
    /** The op definition this node applies; undefined for inputs, params, state and constants. */
    readonly def?: OpDef,
  ) {}
  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }
  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }
  /** True for nodes whose storage outlives a step: inputs, params, state, constants. */
  get persistent(): boolean {
    return this.kind !== "op";
  }
  /**
   * Inputs only: the values the runtime's write() accepts, [lo, hi), and why. Set by ops that index
   * with an input (crossEntropy's labels must be classes), so a bad value is refused on the host
   * instead of turning the loss and every weight NaN.
   */
  valueRange?: { readonly lo: number; readonly hi: number; readonly why: string };
  /** Narrows valueRange to [lo, hi) on an input (a no-op on other nodes, whose values the GPU computes). */
  requireRange(lo: number, hi: number, why: string): void {
    if (this.kind !== "input") return;
    const r = this.valueRange;
    this.valueRange = r
      ? { lo: Math.max(lo, r.lo), hi: Math.min(hi, r.hi), why: `${r.why}; ${why}` }
      : { lo, hi, why };
  }
  /** `name#id[shape]:dtype`, for messages. */
  toString(): string {
    return `${this.name ?? this.op}#${this.id}${fmtShape(this.shape)}:${this.dtype}`;
  }
}

/** The shape and dtype of a tensor. */
export interface TensorSpec {
  /** The tensor's shape. */
  shape: Shape;
  /** The tensor's element type. */
  dtype: DType;
}

/** What an op's shape rule returns: the main output and its extra outputs (read with Graph.aux). */
export interface OutSpec extends TensorSpec {
  /** Extra outputs (e.g. statistics saved for the backward pass), in Graph.aux order. */
  aux?: TensorSpec[];
}

/** A node of an op whose attributes have type A (what gradient rules, kernels and references get). */
export type OpNode<A = Attrs> = Node & { readonly attrs: A };

/**
 * A gradient rule: given the node, the gradient of the loss w.r.t. its output (`dy`, same shape) and
 * which inputs need a gradient, return one gradient per input (undefined where not needed). Rules
 * build their result out of other ops of the same IR, so the backward graph is an ordinary graph.
 */
export type GradRule<A = Attrs> = (
  node: OpNode<A>,
  dy: Node,
  needs: readonly boolean[],
) => (Node | undefined)[];

/**
 * The definition of an op with attributes A: its shape rule, its gradient rule (or "none": indices,
 * backward ops, optimizer updates are not differentiable) and the storage facts lowering needs. The
 * ops of the library are listed in compiler/ops/table.ts; an OpDef made elsewhere (a test's custom
 * op) is applied the same way, with Graph.apply.
 */
export interface OpDef<A = Attrs> {
  /** The op's name: Node.op, kernel labels and error messages use it. */
  readonly name: string;
  /** Validates inputs/attrs and returns the output spec; throws a ShapeError naming the op. */
  infer(inputs: readonly Node[], attrs: A): OutSpec;
  /** The gradient rule, or "none" when the op is not differentiable. */
  readonly grad: GradRule<A> | "none";
  /**
   * Indices of inputs this op updates in place (side-effect ops such as optimizer updates); a
   * function when they depend on the node (adamw_fused writes its first k inputs and its m and v).
   */
  readonly writes?: readonly number[] | ((n: OpNode<A>) => readonly number[]);
  /**
   * Reads persistent inputs after this step's in-place updates of them on purpose (the model EMA
   * averages the weights the optimizer just wrote), so the effect-order check lets it.
   */
  readonly readsUpdated?: boolean;
  /** Output shares the storage of input 0 (reshape): no kernel, no copy. */
  readonly alias?: boolean;
  /**
   * Inputs whose buffer the output may take over when that input dies at this op (elementwise ops:
   * element i is read and written by the same thread). The kernel lowering is then told which input
   * lives in `out` (KernelLowering's `inPlace`).
   */
  readonly inPlace?: readonly number[];
  /**
   * Groups of the node's inputs that must be stored back to back, in order, in one buffer, each at
   * a 256-byte-aligned offset (an "arena"; compiler/lower), so that one binding ({ span }) covers
   * all of them: e.g. a fused optimizer update over every param, gradient and moment.
   */
  readonly spans?: (node: OpNode<A>) => readonly (readonly Node[])[];
}

/**
 * The k-th extra output of a multi-output node, made by Graph.aux (never by apply). It shares the
 * storage the producing kernel wrote and is not differentiable.
 */
const AUX: OpDef<{ index: number }> = {
  name: "aux",
  infer: (inputs) => shapeFail("aux", inputs, "to be created with Graph.aux(node, k)"),
  grad: "none",
};

/** The definition of op node n (its OpDef); throws for inputs, params, state and constants. */
export function opDef(n: Node): OpDef {
  if (!n.def) throw new Error(`opDef: ${n} is a ${n.kind}, not an op`);
  return n.def;
}

/** Which extra output of its producer (inputs[0]) an aux node is. */
export function auxIndex(n: Node): number {
  if (n.op !== "aux") throw new Error(`auxIndex: ${n} is not an aux node`);
  return (n as OpNode<{ index: number }>).attrs.index;
}

/** The inputs node n updates in place (OpDef.writes resolved for n); undefined for ordinary ops. */
export function writesOf(n: Node): readonly number[] | undefined {
  const w = n.def?.writes;
  return typeof w === "function" ? w(n) : w;
}

/** A static graph of nodes with fixed shapes; build it with input/param/state/constant and ops. */
export class Graph {
  /** Every node, in creation (= topological) order. */
  readonly nodes: Node[] = [];
  private readonly names = new Map<string, Node>();

  /** Validates a spec, numbers the node and records its name. */
  private add(
    op: string,
    kind: NodeKind,
    inputs: readonly Node[],
    spec: OutSpec,
    attrs: Attrs,
    opts: { name?: string; trainable?: boolean; init?: Init; streamGroup?: number; def?: OpDef } = {},
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
      opts.def,
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

  /**
   * Applies op `def` (an entry of compiler/ops/table.ts, or a custom OpDef) to `inputs`. Its shape
   * rule validates inputs and attrs and throws a ShapeError naming the op. The op builders
   * (compiler/ops) call this; models call the builders.
   */
  apply<A>(def: OpDef<A>, inputs: readonly Node[], attrs: A, name?: string): Node {
    const op = def.name;
    for (const x of inputs) {
      if (!(x instanceof Node)) throw new ShapeError(`${op}: an input is not a Node (got ${typeof x})`);
      if (x.graph !== this) throw new ShapeError(`${op}: input ${x} belongs to another graph`);
    }
    const spec = def.infer(inputs, attrs);
    // the node keeps its def with the attrs type erased; OpNode<A> gives it back to rules and kernels
    return this.add(op, "op", inputs, spec, attrs as Attrs, { name, def: def as unknown as OpDef });
  }

  /** The k-th extra output of a multi-output node (e.g. the argmax saved by max). Not differentiable. */
  aux(node: Node, k: number): Node {
    const spec = node.auxSpecs[k];
    if (!spec) throw new ShapeError(`aux: ${node} has no extra output ${k}`);
    return this.add("aux", "op", [node], spec, { index: k }, { def: AUX as unknown as OpDef });
  }

  /** The node created with this name; throws when there is none. */
  byName(name: string): Node {
    const n = this.names.get(name);
    if (!n) throw new Error(`graph: no node named '${name}'`);
    return n;
  }

  /** Every param (weight), trainable or frozen, in creation order. */
  get params(): Node[] {
    return this.nodes.filter((n) => n.kind === "param");
  }
  /** The params that get gradients, in creation order. */
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
