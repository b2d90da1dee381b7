// (to be written) WGSL kernels of op family 'patch' (forward and backward).
