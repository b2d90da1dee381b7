// (to be written) op family 'optim': shape rules, gradient rules, builder functions.
