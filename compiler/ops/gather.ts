// (to be written) op family 'gather': shape rules, gradient rules, builder functions.
