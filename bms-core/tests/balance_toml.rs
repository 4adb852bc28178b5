//! The `[balance]` TOML section: partial tables fall back to the defaults field by field, and
//! every field round-trips.
#![cfg(feature = "serde")]

use bms_core::balance::{BalanceConfig, SwitchTiming};
use bms_core::time::Duration;
use bms_core::units::{DeciCelsius, MilliOhms, MilliVolts};

#[test]
fn partial_table_keeps_defaults() {
    let text = r#"
        start_voltage = 3450
        no_adjacent = true
        timing = "scheduled"
        measure_period = 500
        resistor = 47000
        hard_stop = 800
    "#;
    let cfg: BalanceConfig = toml::from_str(text).expect("parses");
    let want = BalanceConfig {
        start_voltage: MilliVolts::from_mv(3_450),
        no_adjacent: true,
        timing: SwitchTiming::Scheduled,
        measure_period: Duration::from_millis(500),
        resistor: MilliOhms::from_ohms(47),
        hard_stop: DeciCelsius::from_celsius(80),
        ..BalanceConfig::default()
    };
    assert_eq!(cfg, want);
    assert_eq!(cfg.validate(), Ok(()));
}

#[test]
fn presets_round_trip() {
    for cfg in [
        BalanceConfig::nmc(),
        BalanceConfig::lfp(),
        BalanceConfig::lto(),
    ] {
        let text = toml::to_string(&cfg).expect("serializes");
        assert!(text.contains("timing = \"afe_managed\""), "{text}");
        let back: BalanceConfig = toml::from_str(&text).expect("parses");
        assert_eq!(back, cfg);
    }
}

#[test]
fn unknown_timing_is_an_error() {
    assert!(toml::from_str::<BalanceConfig>("timing = \"sometimes\"").is_err());
}
