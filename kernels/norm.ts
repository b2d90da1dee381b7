// (to be written) WGSL kernels of op family 'norm' (forward and backward).
