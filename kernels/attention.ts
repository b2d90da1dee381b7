// (to be written) WGSL kernels of op family 'attention' (forward and backward).
