// (to be written) WGSL kernels of op family 'optim' (forward and backward).
