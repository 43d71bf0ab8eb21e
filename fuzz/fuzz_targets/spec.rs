//! A resource as the API server could hand it over (any JSON the types accept) turned into what
//! the operator wants (`Desired`) and a first decision: no spec may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pio::controller::decide::{self, Desired, Observed};
use pio::crd::{ProviderIntegration, ProviderIntegrationStatus};

fuzz_target!(|data: &[u8]| {
    let Ok(pi) = serde_json::from_slice::<ProviderIntegration>(data) else {
        return;
    };
    let _ = pi.decided_status();
    let Ok(desired) = Desired::from_resource(&pi) else {
        return;
    };
    let _ = desired.intent();
    let status = pi.status.clone().unwrap_or_default();
    let _ = decide::decide(&desired, &status, Observed::Missing);
    let _ = decide::decide(&desired, &ProviderIntegrationStatus::default(), Observed::Missing);
});
