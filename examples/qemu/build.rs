//! Puts `memory.x` on the linker search path and rebuilds when `BMS_STEPS`, `BMS_BENCH`
//! or `BMS_CAN` change.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    fs::copy("memory.x", out.join("memory.x")).expect("memory.x is readable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-env-changed=BMS_STEPS");
    println!("cargo:rerun-if-env-changed=BMS_BENCH");
    println!("cargo:rerun-if-env-changed=BMS_CAN");
    println!("cargo:rerun-if-env-changed=BMS_REST");
    println!("cargo:rerun-if-env-changed=BMS_STILL");
}
