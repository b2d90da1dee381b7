// (to be written) WGSL kernels of op family 'layout'.
