// (to be written) op family 'norm': shape rules, gradient rules, builder functions.
