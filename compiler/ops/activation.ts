// (to be written) op family 'activation': shape rules, gradient rules, builder functions.
