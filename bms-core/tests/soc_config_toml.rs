//! The `[soc]` TOML section: only `ocv_mv` is required.
#![cfg(feature = "serde")]

use bms_core::soc::SocConfig;
use bms_core::time::Duration;

#[derive(serde::Deserialize)]
struct Root {
    soc: SocConfig,
}

#[test]
fn a_section_with_only_the_table_parses_with_defaults() {
    let text = "[soc]\nocv_mv = [2223, 2832, 2997, 3122, 3172, 3188, 3209, 3235, 3254, 3263, \
                3266, 3268, 3269, 3270, 3274, 3294, 3310, 3313, 3314, 3316, 3600]\n";
    let root: Root = toml::from_str(text).expect("valid TOML");
    assert_eq!(root.soc.ocv_mv[3], 3_122);
    assert_eq!(root.soc.ocv_mv[20], 3_600);
    assert_eq!(root.soc.rest_time_ms, Duration::from_mins(30));
    assert_eq!(root.soc.full_cell_mv, None);
    assert_eq!(root.soc.full_threshold().as_mv(), 3_316);
    assert!(root.soc.validate().is_ok());
}

#[test]
fn a_preset_round_trips_through_toml() {
    for cfg in [SocConfig::lfp(), SocConfig::nmc(), SocConfig::lto()] {
        let text = toml::to_string(&cfg).expect("serialisable");
        assert!(text.contains("ocv_mv = ["));
        let back: SocConfig = toml::from_str(&text).expect("parses back");
        assert_eq!(back, cfg);
    }
}

#[test]
fn a_table_of_the_wrong_length_is_rejected() {
    let text = "[soc]\nocv_mv = [3000, 3100, 3200]\n";
    assert!(toml::from_str::<Root>(text).is_err());
}
