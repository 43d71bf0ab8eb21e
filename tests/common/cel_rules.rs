//! The CRD's CEL validation rules (`x-kubernetes-validations` on the spec), evaluated as the API
//! server evaluates them, so tests can hold a spec (and an update) to them without a cluster.

use serde_json::Value;

/// The spec schema of the committed CRD.
pub fn spec_schema() -> Value {
    let text =
        std::fs::read_to_string("crds/providerintegrations.pim.confluent.cloud.yaml").unwrap();
    let crd: Value = serde_saphyr::from_str(&text).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

/// The messages of the rules `spec` breaks, its own and those of the fields it sets (as nested
/// as they are). On a create (`old` is `None`) the transition rules, those naming `oldSelf`, are
/// not evaluated, as on a real API server; on an update they are.
pub fn violations(spec: &Value, old: Option<&Value>) -> Vec<String> {
    let mut broken = Vec::new();
    check(&spec_schema(), spec, old, &mut broken);
    broken
}

fn check(schema: &Value, value: &Value, old: Option<&Value>, broken: &mut Vec<String>) {
    for r in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let rule = r["rule"].as_str().expect("a rule");
        if rule.contains("oldSelf") && old.is_none() {
            continue;
        }
        let program = cel::Program::compile(rule).unwrap_or_else(|e| panic!("{rule}: {e:?}"));
        let mut ctx = cel::Context::default();
        ctx.add_variable("self", value).unwrap();
        if let Some(old) = old {
            ctx.add_variable("oldSelf", old).unwrap();
        }
        match program.execute(&ctx) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => {
                broken.push(r["message"].as_str().unwrap_or(rule).to_string())
            }
            other => panic!("{rule} on {value}: {other:?}"),
        }
    }
    if let (Some(props), Some(o)) = (schema["properties"].as_object(), value.as_object()) {
        for (k, v) in o {
            if let Some(sub) = props.get(k) {
                check(sub, v, old.and_then(|old| old.get(k)), broken);
            }
        }
    }
}
