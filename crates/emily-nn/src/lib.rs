//! Emily model graph: named layer nodes, parameter store, fast-kernels rewrite.
