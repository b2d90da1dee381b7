// Registers every op family's WGSL kernel lowering. Import this (mod.ts does) before compiling plans.
import "./elementwise.ts";
import "./reduce.ts";
import "./layout.ts";
import "./matmul.ts";
import "./patch.ts";
import "./activation.ts";
import "./norm.ts";
import "./softmax.ts";
import "./attention.ts";
import "./gather.ts";
import "./loss.ts";
import "./optim.ts";
import "./rope.ts";
import "./points.ts";
import "./batchnorm.ts";
