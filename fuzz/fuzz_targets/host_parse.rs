//! Host-side text decoders: the replay CSV (header and rows) and the TOML pack
//! configuration.
#![no_main]

use bms_hal_mock::{config_file, replay};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(cfg) = config_file::parse(&text) {
        let rendered = config_file::render(&cfg);
        assert_eq!(
            config_file::parse(&rendered).ok(),
            Some(cfg),
            "config round trip"
        );
    }

    let mut lines = text.lines();
    let cells = match lines.next().map(replay::parse_header) {
        Some(Ok(n)) => n,
        // Without a valid header, still parse the rows with a cell count from the input.
        _ => usize::from(data.first().copied().unwrap_or(0) % 24),
    };
    for (i, line) in lines.enumerate() {
        if let Ok(m) = replay::parse_row(i + 2, line, cells) {
            assert!(m.cells().len() <= bms_core::MAX_CELLS);
        }
    }
});
