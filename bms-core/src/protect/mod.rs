//! Protection: fault detectors, the MOSFET decision, pre-charge and power modes.

mod fault;
pub mod rules;

pub use fault::{Fault, FaultSet};
pub use rules::{Action, Direction, Latch, ProtectionRule, ProtectionTable, Quantity, RuleError};
