//! `waymark server --config`: any TOML text is parsed into a `ServerConfig` and
//! validated, or refused with an error naming the key, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waymark_registry::ServerConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = ServerConfig::from_toml_str(text) {
            // A `[tls]` table makes validation read its certificate and key files:
            // keep runs hermetic.
            if config.tls.is_none() {
                let _ = config.validate();
            }
        }
    }
});
