//! Protection: fault detectors, the MOSFET decision, pre-charge and power modes.

mod fault;

pub use fault::{Fault, FaultSet};
