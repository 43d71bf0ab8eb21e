//! Listing: filters, keyset cursors and the links of a page.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::model::{Record, Version};
use crate::pim::types::ListMeta;

/// List filters; `environment` is mandatory.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub environment: String,
    /// `pim/v1`: AWS integrations only, whatever the case they were created with.
    pub aws_only: bool,
    /// `pim/v2`'s `provider` filter: an exact match.
    pub provider: Option<String>,
    pub display_name: Option<String>,
    pub phase: Option<String>,
}

impl Filter {
    /// Whether the filter lets `r` through.
    pub fn admits(&self, r: &Record) -> bool {
        let f = self;
        // The spec calls the provider filter an exact match (`pim-v2.openapi.yaml`,
        // `listPimV2Integrations`), and v2 stores it in lower case: `provider=GCP` finds nothing.
        r.environment == f.environment
            && (!f.aws_only || r.provider.eq_ignore_ascii_case("AWS"))
            && f.provider.as_ref().is_none_or(|p| *p == r.provider)
            // "Filter the results by a partial search of display_name" (the spec): `pi-1` also
            // finds `pi-10`, so clients must compare names themselves.
            && f.display_name
                .as_ref()
                .is_none_or(|n| r.display_name.contains(n.as_str()))
            && f.phase
                .as_ref()
                .is_none_or(|s| s.eq_ignore_ascii_case(r.status()))
    }
}

/// A keyset cursor, so pages stay stable while integrations are created and deleted: an item that
/// exists during the whole walk is returned exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    After(u64),
    Before(u64),
}

impl Cursor {
    pub fn encode(self) -> String {
        let raw = match self {
            Cursor::After(s) => format!("pim:a:{s}"),
            Cursor::Before(s) => format!("pim:b:{s}"),
        };
        URL_SAFE_NO_PAD.encode(raw)
    }
    pub fn decode(token: &str) -> Option<Self> {
        if token.len() > 255 {
            return None;
        }
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
        let rest = raw.strip_prefix("pim:")?;
        let (dir, seq) = rest.split_once(':')?;
        let seq = seq.parse().ok()?;
        match dir {
            "a" => Some(Cursor::After(seq)),
            "b" => Some(Cursor::Before(seq)),
            _ => None,
        }
    }
}

/// One page of a listing, with the cursors of its neighbours.
pub struct Page {
    pub items: Vec<Record>,
    pub prev: Option<Cursor>,
    pub next: Option<Cursor>,
    pub total: u64,
}

/// Builds list metadata links as the published contract shows them: the page token only, e.g.
/// `https://api.confluent.cloud/pim/v2/integrations?page_token=…` (`pim-v2.openapi.yaml`,
/// `ListMeta` examples), although `environment` is required. A client must send its own query
/// again with the token; one that follows the link verbatim loses its environment and filters.
pub fn list_meta(base: &str, version: Version, page: &Page) -> ListMeta {
    let link = |c: Cursor| {
        format!(
            "{base}/{}/integrations?page_token={}",
            version.path(),
            c.encode()
        )
    };
    ListMeta {
        first: Some(link(Cursor::After(0))),
        last: Some(link(Cursor::Before(u64::MAX))),
        prev: page.prev.map(link),
        next: page.next.map(link),
        total_size: page.total,
    }
}
