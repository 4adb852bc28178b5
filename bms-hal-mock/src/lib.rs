//! Mock ports over a simulated battery pack, with fault injection.

pub mod flash;
