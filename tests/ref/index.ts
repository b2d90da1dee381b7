// Registers every op family's CPU reference (f64). Tests only.
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
