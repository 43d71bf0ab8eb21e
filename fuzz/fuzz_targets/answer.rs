//! An HTTP answer of the Provider Integration API (status, `Retry-After`, body) turned into a
//! result, as `PimClient` does for every call: nothing an API or a proxy sends may panic, and
//! every duration read from it is bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pio::pim::{
    Body, Integration, IntegrationList, MAX_RETRY_AFTER, RetryAfter, interpret, page_token,
};

fuzz_target!(|data: &[u8]| {
    let [a, b, flags, rest @ ..] = data else {
        return;
    };
    let status = u16::from_le_bytes([*a, *b]) % 1000;
    let split = usize::from(*flags & 0x7f).min(rest.len());
    let header = String::from_utf8_lossy(&rest[..split]);
    let text = String::from_utf8_lossy(&rest[split..]).into_owned();
    let now = jiff::Timestamp::from_second(i64::from(*a) * 1_000_000).unwrap_or_default();
    let retry = RetryAfter::parse(&header, now);
    if let Some(r) = retry {
        assert!(r.wait <= MAX_RETRY_AFTER);
    }
    let body = || {
        if *flags & 0x80 != 0 {
            Body::TooLarge("more than 1048576 bytes".into())
        } else {
            Body::Whole(text.clone())
        }
    };
    match interpret::<Integration>("get", status, retry, body()) {
        Ok(Some(i)) => {
            let _ = (i.aws(), i.gcp(), i.azure(), i.is_draft());
            let _ = pio::crd::CloudProvider::from_api_name(&i.provider);
        }
        Ok(None) => {}
        Err(e) => {
            let _ = (e.to_string(), e.retry_after(), e.class(), e.code());
            if let Some(d) = e.retry_after() {
                assert!(d <= MAX_RETRY_AFTER);
            }
        }
    }
    if let Ok(Some(list)) = interpret::<IntegrationList>("list", status, retry, body())
        && let Some(next) = list.metadata.next
    {
        let _ = page_token(&next);
    }
    let _ = page_token(&header);
});
