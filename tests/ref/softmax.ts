// (to be written) CPU references (f64) of op family 'softmax'.
