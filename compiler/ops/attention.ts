// (to be written) op family 'attention': shape rules, gradient rules, builder functions.
