//! AWS trust policy documents (pure: no client, no clock).
//!
//! For AWS, Confluent assumes the customer's role from its own role (`config.iam_role_arn`) with
//! the integration's external id (`config.external_id`): the customer role's trust policy needs a
//! statement that allows exactly that. The operator writes one statement per integration, marked
//! by a `Sid` made from the integration id, and touches nothing else in the document: several
//! integrations may trust one role, each adding and removing only its own statement.

use serde_json::{Map, Value, json};

/// The IAM policy language version every trust document is written in.
const POLICY_VERSION: &str = "2012-10-17";

/// The prefix of the `Sid` of every statement the operator writes.
pub const SID_PREFIX: &str = "ConfluentProviderIntegration";

/// The `Sid` of the statement for integration `id`: IAM allows only letters and digits.
pub fn sid(id: &str) -> String {
    let tail: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("{SID_PREFIX}{tail}")
}

/// The statement that lets Confluent's role (`confluent_role`) assume the customer's role with
/// the integration's external id, and nothing else: no wildcard principal, no other action.
pub fn aws_statement(id: &str, confluent_role: &str, external_id: &str) -> Value {
    json!({
        "Sid": sid(id),
        "Effect": "Allow",
        "Principal": {"AWS": confluent_role},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
    })
}

/// A whole trust document holding only `statements`.
pub fn aws_document(statements: Vec<Value>) -> Value {
    json!({"Version": POLICY_VERSION, "Statement": statements})
}

/// A trust document that could not be read as a JSON policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the trust policy document is not a JSON policy: {0}")]
pub struct NotAPolicy(pub String);

/// `document` (a JSON string, as IAM and the cloud operators keep it; empty for none) with the
/// statements whose `Sid` is in `remove` taken out and `add` put in (replacing a statement with
/// its `Sid`). Everything else, statements and fields, is kept as it was. `None` when nothing
/// changes, so an unchanged document is never written again.
pub fn merge(
    document: &str,
    remove: &[String],
    add: Option<Value>,
) -> Result<Option<String>, NotAPolicy> {
    let mut doc: Map<String, Value> = if document.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str::<Value>(document) {
            Ok(Value::Object(m)) => m,
            Ok(other) => return Err(NotAPolicy(format!("a JSON {}", kind(&other)))),
            Err(e) => return Err(NotAPolicy(e.to_string())),
        }
    };
    // IAM takes one statement as an object, or a list of them.
    let statements: Vec<Value> = match doc.remove("Statement") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list,
        Some(one @ Value::Object(_)) => vec![one],
        Some(other) => return Err(NotAPolicy(format!("Statement is a JSON {}", kind(&other)))),
    };
    let added_sid = add
        .as_ref()
        .and_then(|s| s.get("Sid"))
        .and_then(Value::as_str)
        .map(String::from);
    let sid_of = |s: &Value| s.get("Sid").and_then(Value::as_str).map(String::from);
    let mut kept: Vec<Value> = statements
        .iter()
        .filter(|s| {
            sid_of(s).is_none_or(|sid| !remove.contains(&sid) && Some(&sid) != added_sid.as_ref())
        })
        .cloned()
        .collect();
    if let Some(ours) = add {
        kept.push(ours);
    }
    if same_statements(&statements, &kept) {
        return Ok(None);
    }
    doc.entry("Version")
        .or_insert_with(|| POLICY_VERSION.into());
    doc.insert("Statement".into(), Value::Array(kept));
    Ok(Some(Value::Object(doc).to_string()))
}

/// Whether two statement lists hold the same statements (order aside: IAM ignores it).
fn same_statements(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().all(|s| b.contains(s))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The statements of `document` the operator wrote (by their `Sid`), for tests and status.
pub fn our_sids(document: &str) -> Vec<String> {
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(document) else {
        return Vec::new();
    };
    let statements = match doc.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    statements
        .iter()
        .filter_map(|s| s.get("Sid").and_then(Value::as_str))
        .filter(|s| s.starts_with(SID_PREFIX))
        .map(String::from)
        .collect()
}

/// The role name and path of an IAM role ARN: `arn:aws:iam::123456789012:role/a/b/name` is
/// `("name", "/a/b/")`; `None` for anything that is not a role ARN.
pub fn role_name_and_path(arn: &str) -> Option<(String, String)> {
    let resource = arn.strip_prefix("arn:")?.splitn(5, ':').nth(4)?;
    let rest = resource.strip_prefix("role/")?;
    let (path, name) = match rest.rsplit_once('/') {
        Some((p, n)) => (format!("/{p}/"), n),
        None => ("/".to_string(), rest),
    };
    (!name.is_empty()).then(|| (name.to_string(), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFLT: &str = "arn:aws:iam::000000000000:role/confluent";

    fn team_document() -> String {
        json!({
            "Version": "2012-10-17",
            "Id": "team-policy",
            "Statement": [{
                "Sid": "Ec2",
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }],
        })
        .to_string()
    }

    #[test]
    fn the_statement_is_exactly_confluents_role_and_external_id() {
        let s = aws_statement("dlz-f3a90de", CFLT, "ext-1");
        assert_eq!(
            s,
            json!({"Sid": "ConfluentProviderIntegrationdlzf3a90de", "Effect": "Allow",
                "Principal": {"AWS": CFLT}, "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": "ext-1"}}})
        );
        assert!(sid("cspi-1_2.3").chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn adding_keeps_the_teams_statements_and_fields() {
        let ours = aws_statement("dlz-1", CFLT, "ext-1");
        let merged = merge(&team_document(), &[], Some(ours.clone()))
            .unwrap()
            .unwrap();
        let doc: Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(doc["Id"], "team-policy");
        assert_eq!(doc["Version"], "2012-10-17");
        let statements = doc["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[0]["Sid"], "Ec2");
        assert_eq!(statements[1], ours);
        // Again: nothing changes, nothing to write.
        assert_eq!(merge(&merged, &[], Some(ours)).unwrap(), None);
    }

    #[test]
    fn each_integration_adds_and_removes_only_its_own_statement() {
        let one = aws_statement("dlz-1", CFLT, "ext-1");
        let two = aws_statement("dlz-2", CFLT, "ext-2");
        let d = merge(&team_document(), &[], Some(one)).unwrap().unwrap();
        let d = merge(&d, &[], Some(two.clone())).unwrap().unwrap();
        assert_eq!(our_sids(&d), [sid("dlz-1"), sid("dlz-2")]);
        // A recreate: dlz-1 becomes dlz-3 with a new external id.
        let three = aws_statement("dlz-3", CFLT, "ext-3");
        let d = merge(&d, &[sid("dlz-1")], Some(three)).unwrap().unwrap();
        assert_eq!(our_sids(&d), [sid("dlz-2"), sid("dlz-3")]);
        // dlz-2's resource goes: only its statement goes.
        let d = merge(&d, &[sid("dlz-2")], None).unwrap().unwrap();
        assert_eq!(our_sids(&d), [sid("dlz-3")]);
        let doc: Value = serde_json::from_str(&d).unwrap();
        assert_eq!(doc["Statement"][0]["Sid"], "Ec2");
        // A changed external id for the same id replaces the statement.
        let renewed = aws_statement("dlz-3", CFLT, "ext-4");
        let d = merge(&d, &[], Some(renewed.clone())).unwrap().unwrap();
        let doc: Value = serde_json::from_str(&d).unwrap();
        assert_eq!(doc["Statement"].as_array().unwrap().len(), 2);
        assert_eq!(doc["Statement"][1], renewed);
    }

    #[test]
    fn role_arns_name_the_role_and_its_path() {
        let cases = [
            (
                "arn:aws:iam::123456789012:role/s3-sink",
                Some(("s3-sink", "/")),
            ),
            (
                "arn:aws:iam::123456789012:role/team/a/s3-sink",
                Some(("s3-sink", "/team/a/")),
            ),
            ("arn:aws-cn:iam::123456789012:role/r", Some(("r", "/"))),
            ("arn:aws:iam::123456789012:user/u", None),
            ("arn:aws:iam::123456789012:role/", None),
            ("not-an-arn", None),
        ];
        for (arn, want) in cases {
            let got = role_name_and_path(arn);
            assert_eq!(
                got.as_ref().map(|(n, p)| (n.as_str(), p.as_str())),
                want,
                "{arn}"
            );
        }
    }

    #[test]
    fn documents_iam_accepts_are_read_and_others_refused() {
        // One statement as an object, not a list.
        let single = json!({"Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sts:AssumeRole"}})
        .to_string();
        let d = merge(&single, &[], Some(aws_statement("dlz-1", CFLT, "e")))
            .unwrap()
            .unwrap();
        let doc: Value = serde_json::from_str(&d).unwrap();
        assert_eq!(doc["Statement"].as_array().unwrap().len(), 2);
        // None yet: a whole document of ours.
        let d = merge("", &[], Some(aws_statement("dlz-1", CFLT, "e")))
            .unwrap()
            .unwrap();
        let doc: Value = serde_json::from_str(&d).unwrap();
        assert_eq!(doc, aws_document(vec![aws_statement("dlz-1", CFLT, "e")]));
        // Removing what is not there changes nothing.
        assert_eq!(
            merge(&team_document(), &[sid("dlz-9")], None).unwrap(),
            None
        );
        assert!(merge("[1]", &[], None).is_err());
        assert!(merge("{\"Statement\": 3}", &[], None).is_err());
        assert!(merge("not json", &[], None).is_err());
    }
}
