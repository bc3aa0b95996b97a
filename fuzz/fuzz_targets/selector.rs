//! Binding-rule selectors (`waymark acl binding-rule create --selector`): any text
//! parses or is refused with a message, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waymark_proto::selector::Selector;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Selector::parse(text);
    }
});
