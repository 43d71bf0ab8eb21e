//! The decision for an observer (`managementPolicy: Observe`).

use super::{Decision, Desired, Observed, Reason, changed_fields};

/// The decision for an observer (`managementPolicy: Observe`), which never writes to Confluent
/// Cloud and is nobody's owner (the owner index does not hold it, so `decide_among`'s rules do
/// not apply):
///
/// | found                  | decision                        |
/// |------------------------|---------------------------------|
/// | none                   | `Stall IntegrationGone` (waits) |
/// | one, matching the spec | `Mirror`                        |
/// | one, not matching      | `Stall AdoptedMismatch`         |
/// | several holding the key | `Stall AmbiguousIntegration`   |
pub fn decide_observer(desired: &Desired, observed: Observed) -> Decision {
    let mut found = match observed {
        Observed::Found(i) => vec![i],
        Observed::ByKey(found) => found,
        Observed::Missing => Vec::new(),
    };
    let what = match &desired.adopt_id {
        Some(id) => format!("integration {id}"),
        None => format!(
            "an integration with {} {}",
            desired.config.field(),
            desired.config.value()
        ),
    };
    match found.len() {
        0 => Decision::Stall {
            reason: Reason::IntegrationGone,
            message: format!(
                "{what} is not in environment {} (deleted, or not created yet); an observer never creates \
                 one: the status keeps the last values seen, and the resource waits for it",
                desired.environment
            ),
        },
        1 => {
            let i = found.remove(0);
            let changed = changed_fields(desired, &i, true);
            if changed.is_empty() {
                Decision::Mirror(i)
            } else {
                Decision::Stall {
                    reason: Reason::AdoptedMismatch,
                    message: format!(
                        "integration {} does not match the spec in {}; an observer mirrors only the integration its spec describes",
                        i.id,
                        changed.join(", ")
                    ),
                }
            }
        }
        _ => Decision::Stall {
            reason: Reason::AmbiguousIntegration,
            message: format!(
                "{} integrations hold {} {} in environment {} ({}); set spec.integrationId to the one to observe",
                found.len(),
                desired.config.field(),
                desired.config.value(),
                desired.environment,
                found
                    .iter()
                    .map(|i| i.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}
