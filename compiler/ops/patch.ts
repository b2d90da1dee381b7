// (to be written) op family 'patch': shape rules, gradient rules, builder functions.
