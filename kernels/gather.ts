// (to be written) WGSL kernels of op family 'gather' (forward and backward).
