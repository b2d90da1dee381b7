// (to be written) WGSL kernels of op family 'matmul' (forward and backward).
