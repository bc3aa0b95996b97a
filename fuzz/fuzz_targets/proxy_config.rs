//! `waymark-proxy --config`: any TOML text is parsed and validated into a config or
//! refused with an error naming the key, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waymark_proxy::config::{Config, Overrides};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // A config naming a CA file would read it from disk: keep runs hermetic.
        if !text.contains("ca_file") {
            let _ = Config::parse(text, &Overrides::default());
        }
    }
});
