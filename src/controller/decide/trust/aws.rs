//! AWS trust policy documents (pure: no client, no clock).
//!
//! For AWS, Confluent assumes the customer's role from its own role (`config.iam_role_arn`) with
//! the integration's external id (`config.external_id`): the customer role's trust policy needs
//! the statements Confluent publishes for that (its Terraform examples, `iam_role_module`): allow
//! `sts:AssumeRole` to Confluent's role on condition of the external id, and `sts:TagSession` to
//! the same role (Tableflow and newer connectors pass session tags). The operator writes these per
//! integration, marked by `Sid`s made from the integration id, and touches nothing else in the
//! document: several integrations may trust one role, each adding and removing only its own.

use serde_json::{Map, Value, json};

/// The IAM policy language version every trust document is written in.
const POLICY_VERSION: &str = "2012-10-17";

/// The prefix of the `Sid` of every statement the operator writes.
pub const SID_PREFIX: &str = "ConfluentProviderIntegration";

/// The `Sid` of the `sts:AssumeRole` statement for integration `id`: IAM allows only letters
/// and digits.
pub fn sid(id: &str) -> String {
    let tail: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("{SID_PREFIX}{tail}")
}

/// The `Sid`s of every statement written for integration `id`.
pub fn sids(id: &str) -> Vec<String> {
    let assume = sid(id);
    let tags = format!("{assume}Tags");
    vec![assume, tags]
}

/// The statements that let Confluent's role (`confluent_role`) assume the customer's role with
/// the integration's external id, and tag that session; nothing else: no wildcard principal, no
/// other action.
pub fn aws_statements(id: &str, confluent_role: &str, external_id: &str) -> Vec<Value> {
    let [assume, tags]: [String; 2] = sids(id).try_into().unwrap_or_default();
    vec![
        json!({
            "Sid": assume,
            "Effect": "Allow",
            "Principal": {"AWS": confluent_role},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
        }),
        json!({
            "Sid": tags,
            "Effect": "Allow",
            "Principal": {"AWS": confluent_role},
            "Action": "sts:TagSession",
        }),
    ]
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
/// statements whose `Sid` is in `remove` taken out and `add` put in (replacing statements with
/// their `Sid`s). Everything else, statements and fields, is kept as it was. `None` when nothing
/// changes, so an unchanged document is never written again.
pub fn merge(
    document: &str,
    remove: &[String],
    add: Vec<Value>,
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
    let sid_of = |s: &Value| s.get("Sid").and_then(Value::as_str).map(String::from);
    let added: Vec<String> = add.iter().filter_map(sid_of).collect();
    let mut kept: Vec<Value> = statements
        .iter()
        .filter(|s| sid_of(s).is_none_or(|sid| !remove.contains(&sid) && !added.contains(&sid)))
        .cloned()
        .collect();
    kept.extend(add);
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
    fn the_statements_are_exactly_confluents_role_and_external_id() {
        let s = aws_statements("dlz-f3a90de", CFLT, "ext-1");
        assert_eq!(
            s,
            [
                json!({"Sid": "ConfluentProviderIntegrationdlzf3a90de", "Effect": "Allow",
                    "Principal": {"AWS": CFLT}, "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"sts:ExternalId": "ext-1"}}}),
                json!({"Sid": "ConfluentProviderIntegrationdlzf3a90deTags", "Effect": "Allow",
                    "Principal": {"AWS": CFLT}, "Action": "sts:TagSession"}),
            ]
        );
        assert!(sid("cspi-1_2.3").chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn adding_keeps_the_teams_statements_and_fields() {
        let ours = aws_statements("dlz-1", CFLT, "ext-1");
        let merged = merge(&team_document(), &[], ours.clone()).unwrap().unwrap();
        let doc: Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(doc["Id"], "team-policy");
        assert_eq!(doc["Version"], "2012-10-17");
        let statements = doc["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 3);
        assert_eq!(statements[0]["Sid"], "Ec2");
        assert_eq!(statements[1..], ours[..]);
        // Again: nothing changes, nothing to write.
        assert_eq!(merge(&merged, &[], ours).unwrap(), None);
    }

    #[test]
    fn each_integration_adds_and_removes_only_its_own_statements() {
        let one = aws_statements("dlz-1", CFLT, "ext-1");
        let two = aws_statements("dlz-2", CFLT, "ext-2");
        let d = merge(&team_document(), &[], one).unwrap().unwrap();
        let d = merge(&d, &[], two).unwrap().unwrap();
        assert_eq!(our_sids(&d), [sids("dlz-1"), sids("dlz-2")].concat());
        // A recreate: dlz-1 becomes dlz-3 with a new external id.
        let three = aws_statements("dlz-3", CFLT, "ext-3");
        let d = merge(&d, &sids("dlz-1"), three).unwrap().unwrap();
        assert_eq!(our_sids(&d), [sids("dlz-2"), sids("dlz-3")].concat());
        // dlz-2's resource goes: only its statements go.
        let d = merge(&d, &sids("dlz-2"), Vec::new()).unwrap().unwrap();
        assert_eq!(our_sids(&d), sids("dlz-3"));
        let doc: Value = serde_json::from_str(&d).unwrap();
        assert_eq!(doc["Statement"][0]["Sid"], "Ec2");
        // A changed external id for the same id replaces the statements.
        let renewed = aws_statements("dlz-3", CFLT, "ext-4");
        let d = merge(&d, &[], renewed.clone()).unwrap().unwrap();
        let doc: Value = serde_json::from_str(&d).unwrap();
        assert_eq!(doc["Statement"].as_array().unwrap().len(), 3);
        assert_eq!(doc["Statement"].as_array().unwrap()[1..], renewed[..]);
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
        let d = merge(&single, &[], aws_statements("dlz-1", CFLT, "e"))
            .unwrap()
            .unwrap();
        let doc: Value = serde_json::from_str(&d).unwrap();
        assert_eq!(doc["Statement"].as_array().unwrap().len(), 3);
        // None yet: a whole document of ours.
        let d = merge("", &[], aws_statements("dlz-1", CFLT, "e"))
            .unwrap()
            .unwrap();
        let doc: Value = serde_json::from_str(&d).unwrap();
        assert_eq!(doc, aws_document(aws_statements("dlz-1", CFLT, "e")));
        // Removing what is not there changes nothing.
        assert_eq!(
            merge(&team_document(), &sids("dlz-9"), Vec::new()).unwrap(),
            None
        );
        assert!(merge("[1]", &[], Vec::new()).is_err());
        assert!(merge("{\"Statement\": 3}", &[], Vec::new()).is_err());
        assert!(merge("not json", &[], Vec::new()).is_err());
    }
}
