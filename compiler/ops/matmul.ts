// (to be written) op family 'matmul': shape rules, gradient rules, builder functions.
