// Pass: dispatches. Op by op in execution order, the pool (liveness.ts) gives the op's values storage,
// the op's kernel lowering (kernels/) returns its dispatches and scratch sizes, and each binding is
// resolved to a buffer range: a value's buffer (at its arena offset), a streamed weight's slot offset
// (the slot is picked later, stream.ts), an extra output, a fused norm's statistics, a span of an
// arena, or scratch. One loop, because an op's scratch buffers come from the same pool.

import { byteSize, fmtShape, type Node, writesOf } from "../core/ir.ts";
import { kernelOf } from "../../kernels/table.ts";
import type { Dispatch, LowerCtx, Lowered } from "../../kernels/kernel.ts";
import type { Epilogue } from "../../kernels/epilogue.ts";
import type { Prologue } from "../../kernels/prologue.ts";
import { spanBinding } from "./arenas.ts";
import type { FusionPlan } from "./fuse.ts";
import { aliasRoot } from "./live.ts";
import type { Pool } from "./liveness.ts";
import { UNASSIGNED_SLOT } from "./stream.ts";
import type { PlannedBinding, PlannedDispatch, StreamPlan } from "./types.ts";

/** What emitDispatches reads besides the ops. */
export interface EmitEnv {
  ctx: LowerCtx;
  /** Largest single binding the device allows. */
  maxBinding: number;
  fusion: FusionPlan;
  /** Gives values storage; its table is where bindings are looked up. */
  pool: Pool;
  stream?: StreamPlan;
}

/**
 * Lowers `ops` (execution order) to dispatches with resolved bindings, placing values in the pool as
 * it goes. Returns the dispatches and, for each, the streaming group whose weights it binds.
 */
export function emitDispatches(
  ops: readonly Node[],
  env: EmitEnv,
): { dispatches: PlannedDispatch[]; groups: (number | undefined)[] } {
  const dispatches: PlannedDispatch[] = [];
  const groups: (number | undefined)[] = [];
  ops.forEach((n, i) => {
    const placed = env.pool.place(n, i);
    if (placed) {
      const epi = env.fusion.epilogues.get(n);
      const pro = env.fusion.prologues.get(n);
      const statsOnly = env.fusion.statsOnly.has(n);
      let lowered: Lowered;
      try {
        const extra = pro || statsOnly ? { prologue: pro, statsOnly } : undefined;
        lowered = kernelOf(n)(n, env.ctx, epi, placed.inPlace, extra);
      } catch (e) {
        throw new Error(`lower: ${n.op} for ${n}: ${(e as Error).message}`);
      }
      const op: OpBindings = {
        n,
        writes: writesOf(n) ?? [],
        scratch: env.pool.scratch(lowered.scratch ?? [], i),
        scratchBytes: lowered.scratch ?? [],
        epi,
        pro,
      };
      for (const d of lowered.dispatches) {
        const { dispatch, group } = resolve(env, op, d);
        dispatches.push(dispatch);
        groups.push(group);
      }
    }
    // release buffers whose last reader is this op (after this op's own outputs were taken)
    env.pool.release(i);
  });
  return { dispatches, groups };
}

/** What the bindings of one op's dispatches may refer to. */
interface OpBindings {
  n: Node;
  /** Inputs the op overwrites (OpDef.writes). */
  writes: readonly number[];
  scratch: number[];
  scratchBytes: readonly number[];
  epi?: Epilogue;
  pro?: Prologue;
}

function resolve(
  env: EmitEnv,
  { n, writes, scratch, scratchBytes, epi, pro }: OpBindings,
  d: Dispatch,
): { dispatch: PlannedDispatch; group: number | undefined } {
  const { storage } = env.pool;
  let group: number | undefined;
  const bindings: PlannedBinding[] = d.bindings.map((bd) => {
    let buffer: number, bytes: number, writable: boolean, what: string, offset = 0;
    if ("node" in bd.ref) {
      const t = bd.ref.node;
      const k = n.inputs.indexOf(t);
      const fused = (epi !== undefined && (t === epi.out || t === epi.residual)) ||
        (pro !== undefined && (t === pro.x || t === pro.weight || t === pro.bias));
      if (t !== n && k < 0 && !fused) {
        throw new Error(`lower: ${d.label} binds ${t}, which is not an input or output of ${n}`);
      }
      bytes = byteSize(t.shape, t.dtype);
      const root = aliasRoot(t); // a reshape of a streamed weight lives where the weight does
      if (env.stream?.offsets.has(root)) {
        // the slot is chosen once phases are known (assignPhases); the offset is fixed
        if (group !== undefined && group !== root.streamGroup) {
          throw new Error(
            `lower: ${d.label} binds weights of two streaming groups (${group}, ${root.streamGroup})`,
          );
        }
        group = root.streamGroup;
        buffer = UNASSIGNED_SLOT;
        offset = env.stream.offsets.get(root)!;
      } else {
        const s = storage.of.get(t);
        if (s === undefined) throw new Error(`lower: ${d.label} binds ${t}, which has no storage`);
        buffer = s;
        offset = storage.offsets.get(root) ?? 0;
      }
      writable = t === n || t === epi?.out || writes.some((w) => n.inputs[w] === t);
      what = `${t}`;
    } else if ("aux" in bd.ref) {
      const spec = n.auxSpecs[bd.ref.aux];
      buffer = storage.aux.get(n)![bd.ref.aux];
      bytes = byteSize(spec.shape, spec.dtype);
      writable = true;
      what = `aux ${bd.ref.aux} of ${n}`;
    } else if ("auxOf" in bd.ref) {
      // another node's statistics (a norm prologue), computed earlier and kept alive (Lifetimes.auxNeed)
      const { auxOf, k } = bd.ref;
      const b = storage.aux.get(auxOf)?.[k];
      if (pro?.norm !== auxOf || b === undefined) {
        throw new Error(`lower: ${d.label} binds aux ${k} of ${auxOf}, which is not its prologue's norm`);
      }
      const spec = auxOf.auxSpecs[k];
      buffer = b;
      bytes = byteSize(spec.shape, spec.dtype);
      writable = false;
      what = `aux ${k} of ${auxOf}`;
    } else if ("span" in bd.ref) {
      ({ buffer, offset, bytes } = spanBinding(storage, n, d.label, bd.ref.span));
      writable = bd.ref.span.every((t) => writes.some((w) => n.inputs[w] === t));
      what = `span of ${bd.ref.span.length} from ${bd.ref.span[0]}`;
    } else {
      buffer = scratch[bd.ref.scratch];
      bytes = scratchBytes[bd.ref.scratch];
      writable = true;
      what = `scratch ${bd.ref.scratch} of ${n}`;
    }
    if (bytes > env.maxBinding) {
      throw new Error(
        `lower: ${d.label} for ${n}: binding '${bd.name}' (${what}) needs ${bytes} bytes, over the device's ` +
          `maxStorageBufferBindingSize of ${env.maxBinding}; use a smaller batch or split the tensor`,
      );
    }
    return { name: bd.name, buffer, bytes, offset, writable, what };
  });
  for (const w of d.workgroups) {
    if (!Number.isInteger(w) || w < 1 || w > env.ctx.maxWorkgroupsPerDim) {
      throw new Error(
        `lower: ${d.label} for ${n}${fmtShape(n.shape)} dispatches ${d.workgroups.join("x")} workgroups; ` +
          `each must be 1..${env.ctx.maxWorkgroupsPerDim}`,
      );
    }
  }
  const dispatch = {
    label: d.label,
    node: n,
    code: d.code,
    entry: d.entry ?? "main",
    bindings,
    workgroups: d.workgroups,
  };
  return { dispatch, group };
}
