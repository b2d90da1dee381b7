// CPU references (f64) of the layout family (reshape needs none: it is an alias).
