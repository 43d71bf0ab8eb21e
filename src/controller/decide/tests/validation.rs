//! When to validate, and what an answer means.

use super::*;

fn condition(status: &str, generation: i64, message: &str) -> Condition {
    Condition {
        type_: "Validated".into(),
        status: status.into(),
        reason: "R".into(),
        message: message.into(),
        observed_generation: Some(generation),
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::UNIX_EPOCH,
        ),
    }
}

#[test]
fn validation_step_table() {
    let now = Instant::now();
    let later = now + Duration::from_secs(10);
    let memo = |id: &str, generation: i64, due: Instant, failures: u32| ValidationMemo {
        generation: Some(generation),
        id: id.into(),
        due,
        failures,
    };
    let current = condition("True", 1, "");
    let old = condition("True", 0, "");
    let cases = [
        // Never validated.
        (None, Some(&current), ValidationStep::Now { failures: 0 }),
        // Due later, same id and generation, condition current: wait.
        (
            Some(memo("i", 1, later, 2)),
            Some(&current),
            ValidationStep::NotYet(Duration::from_secs(10)),
        ),
        // Due now: validate, counting the failures so far.
        (
            Some(memo("i", 1, now, 2)),
            Some(&current),
            ValidationStep::Now { failures: 2 },
        ),
        // Another integration: its own count.
        (
            Some(memo("other", 1, later, 2)),
            Some(&current),
            ValidationStep::Now { failures: 0 },
        ),
        // Another generation, or a condition of an older one: at once.
        (
            Some(memo("i", 0, later, 2)),
            Some(&current),
            ValidationStep::Now { failures: 2 },
        ),
        (
            Some(memo("i", 1, later, 2)),
            Some(&old),
            ValidationStep::Now { failures: 2 },
        ),
        (
            Some(memo("i", 1, later, 2)),
            None,
            ValidationStep::Now { failures: 2 },
        ),
    ];
    for (m, c, want) in cases {
        assert_eq!(
            validation_step(m.as_ref(), "i", Some(1), c, now),
            want,
            "{m:?} {c:?}"
        );
    }
}

#[test]
fn validation_outcome_table() {
    let i = gcp("cspi-1", ENV, "name", Some(SA));
    let pass = || Validation::Passed;
    let fail = || Validation::Failed("denied".into());
    let blip = || Validation::Transient {
        error: "503".into(),
        retry_after: Some(Duration::from_secs(3)),
    };
    let failed_msg = validation_outcome(&i, None, 0, fail()).condition.unwrap().2;
    let was_true = condition("True", 1, "ok");
    let was_false = condition("False", 1, &failed_msg);
    let was_false_other = condition("False", 1, "older detail");
    // (previous, result) → condition status set (None: kept), event (warning?), next
    type Case<'a> = (
        Option<&'a Condition>,
        Validation,
        Option<&'static str>,
        Option<bool>,
        Next,
    );
    let cases: Vec<Case> = vec![
        (None, pass(), Some("True"), Some(false), Next::Resync),
        // Passing again: no event.
        (Some(&was_true), pass(), Some("True"), None, Next::Resync),
        (
            Some(&was_false),
            pass(),
            Some("True"),
            Some(false),
            Next::Resync,
        ),
        (
            None,
            fail(),
            Some("False"),
            Some(true),
            Next::StallRetry { failures: 3 },
        ),
        // The same failure again: no second Warning.
        (
            Some(&was_false),
            fail(),
            Some("False"),
            None,
            Next::StallRetry { failures: 3 },
        ),
        (
            Some(&was_false_other),
            fail(),
            Some("False"),
            Some(true),
            Next::StallRetry { failures: 3 },
        ),
        // A blip never says anything about the customer's setup.
        (
            None,
            blip(),
            Some("Unknown"),
            None,
            Next::Retry {
                failures: 3,
                hint: Some(Duration::from_secs(3)),
            },
        ),
        (
            Some(&was_true),
            blip(),
            None,
            None,
            Next::Retry {
                failures: 3,
                hint: Some(Duration::from_secs(3)),
            },
        ),
        (
            Some(&was_false),
            blip(),
            None,
            None,
            Next::Retry {
                failures: 3,
                hint: Some(Duration::from_secs(3)),
            },
        ),
    ];
    for (previous, result, status, warning, next) in cases {
        let what = format!("{previous:?} {result:?}");
        let o = validation_outcome(&i, previous, 2, result);
        assert_eq!(o.condition.as_ref().map(|c| c.0), status, "{what}");
        assert_eq!(o.event.as_ref().map(|e| e.0), warning, "{what}");
        assert_eq!(o.next, next, "{what}");
        assert_eq!(
            o.failures,
            if next == Next::Resync { 0 } else { 3 },
            "{what}"
        );
    }
    // The failure names the grant to make; the pass names the identity.
    assert!(failed_msg.contains("roles/iam.serviceAccountTokenCreator"));
    assert!(
        validation_outcome(&i, None, 0, pass())
            .condition
            .unwrap()
            .2
            .contains(SA)
    );
}
