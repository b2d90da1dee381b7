// (to be written) op family 'softmax': shape rules, gradient rules, builder functions.
