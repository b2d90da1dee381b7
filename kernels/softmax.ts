// (to be written) WGSL kernels of op family 'softmax' (forward and backward).
