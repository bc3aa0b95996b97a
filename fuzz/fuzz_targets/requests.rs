//! Request validation at the API edge: arbitrary bytes decoded as the client API's
//! requests (as tonic would) and run through the validators the server and the
//! leader's admission check use. Refusals are fine; panics are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use waymark_proto::{pb, Registration, WatchSelection};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = pb::RegisterRequest::decode(data) {
        let _ = Registration::try_from(req);
    }
    if let Ok(req) = pb::WatchRequest::decode(data) {
        let _ = WatchSelection::try_from(&req);
    }
    if let Ok(req) = pb::UpdateHealthRequest::decode(data) {
        let _ = waymark_proto::check_health_update(&req);
    }
    if let Ok(req) = pb::PutConfigRequest::decode(data) {
        let _ = waymark_proto::check_config_key("key", &req.key);
        let _ = waymark_proto::check_config_value(&req.value);
    }
});
