//! Benchmarks of `bms-core`; see `benches/`.
