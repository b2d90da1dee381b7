// (to be written) WGSL kernels of op family 'activation' (forward and backward).
