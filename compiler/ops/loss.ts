// (to be written) op family 'loss': shape rules, gradient rules, builder functions.
