//! Host examples of `bms-core`; see the `examples/` targets.
