//! Emily core: lazy tensors, ops, fast kernels, compiler and backends.
