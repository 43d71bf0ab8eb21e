//! The gates before a decision is carried out: when the finalizer is added, and what a pause
//! leads to.

use super::Decision;

/// When a live resource gets the finalizer, for the decision about to be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalizerStep {
    /// It has it already.
    Present,
    /// Not yet: a stall writes nothing to Confluent, so there is nothing to clean up after.
    NotYet,
    /// In the first create's own patch, together with its intent (one write, not two).
    WithIntent,
    /// Now, before the decision is carried out: it records, adopts or deletes an integration
    /// that a deletion of the resource must then clean up after.
    AddNow,
}

/// The finalizer judgement:
///
/// | has it | decision                              | step         |
/// |--------|---------------------------------------|--------------|
/// | yes    | any                                   | `Present`    |
/// | no     | `Stall`                               | `NotYet`     |
/// | no     | `Create`                              | `WithIntent` |
/// | no     | `InSync`, `Claim`, `Adopt`, `Recreate` | `AddNow`     |
pub fn finalizer_step(decision: &Decision, has_finalizer: bool) -> FinalizerStep {
    match decision {
        _ if has_finalizer => FinalizerStep::Present,
        Decision::Stall { .. } => FinalizerStep::NotYet,
        Decision::Create { .. } => FinalizerStep::WithIntent,
        Decision::InSync(_)
        | Decision::Claim(_)
        | Decision::Adopt(_)
        | Decision::Recreate { .. } => FinalizerStep::AddNow,
        // An observer deletes nothing, so it has nothing to clean up after.
        Decision::Mirror(_) => FinalizerStep::NotYet,
    }
}

/// Whether a resource is paused, as far as can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paused {
    No,
    Yes,
    /// Its Namespace cannot be read now (the watch of Namespaces is starting or failing), so a
    /// pause there cannot be ruled out.
    Unknown,
}

/// What the pause annotation (on the resource or its Namespace) leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseStep {
    /// Not paused, and no `Paused` condition to clear: work as usual.
    Go,
    /// Paused: say so (and, while being deleted, that the finalizer waits), do nothing else.
    Hold { deleting: bool },
    /// A pause cannot be ruled out: do nothing and look again soon; a deletion says why it waits.
    Unsure { deleting: bool },
    /// The pause was lifted: clear the `Paused` condition, then work as usual.
    Resume,
}

/// The pause judgement. A pause is never lost to an error: while it cannot be told, nothing is
/// done that the pause would forbid.
///
/// | paused  | deleting | `deletionPolicy: Orphan` | `Paused` condition | step                |
/// |---------|----------|--------------------------|--------------------|---------------------|
/// | yes/unknown | yes  | yes                      | any                | `Go` (no Confluent call to hold) |
/// | yes     | yes      | no                       | any                | `Hold{deleting}`    |
/// | yes     | no       | any                      | any                | `Hold`              |
/// | unknown | any      | no (or not deleting)     | any                | `Unsure{deleting}`  |
/// | no      | any      | any                      | present            | `Resume`            |
/// | no      | any      | any                      | absent             | `Go`                |
pub fn pause_step(paused: Paused, deleting: bool, orphan: bool, has_condition: bool) -> PauseStep {
    match (paused, deleting, orphan) {
        (Paused::Yes | Paused::Unknown, true, true) => PauseStep::Go,
        (Paused::Yes, deleting, _) => PauseStep::Hold { deleting },
        (Paused::Unknown, deleting, _) => PauseStep::Unsure { deleting },
        (Paused::No, ..) if has_condition => PauseStep::Resume,
        (Paused::No, ..) => PauseStep::Go,
    }
}
