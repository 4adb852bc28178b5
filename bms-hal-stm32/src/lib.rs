//! STM32 board adapter for `bms-core`.
#![cfg_attr(not(test), no_std)]
