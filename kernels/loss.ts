// (to be written) WGSL kernels of op family 'loss' (forward and backward).
