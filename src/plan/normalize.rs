//! One model for every way of writing a CloudFormation template: YAML with
//! short-form intrinsics (`!Ref`, `!GetAtt A.B`, `!Sub`, …), YAML with long
//! forms, or JSON all normalise to the same JSON value, so formatting never
//! shows as a change.
//!
//! Owns: template text -> canonical `serde_json::Value`. Must not: compare.

use serde_json::{Map, Value};
use serde_yaml::Value as Yaml;

/// Parse and normalise a template (YAML or JSON text).
pub fn normalize(text: &str) -> Result<Value, serde_yaml::Error> {
    let yaml: Yaml = serde_yaml::from_str(text)?;
    Ok(convert(yaml))
}

fn convert(v: Yaml) -> Value {
    match v {
        Yaml::Null => Value::Null,
        // CloudFormation reads scalars as strings: `2`, `"2"` and `true`,
        // `"true"` mean the same thing.
        Yaml::Bool(b) => Value::String(b.to_string()),
        Yaml::Number(n) => Value::String(n.to_string()),
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(convert).collect()),
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Yaml::String(s) => s,
                    other => serde_yaml::to_string(&other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                out.insert(key, convert(v));
            }
            canonical_getatt(Value::Object(out))
        }
        Yaml::Tagged(tagged) => {
            let name = tagged.tag.to_string();
            let name = name.trim_start_matches('!');
            let inner = convert(tagged.value);
            let key = match name {
                "Ref" | "Condition" => name.to_string(),
                _ => format!("Fn::{name}"),
            };
            let mut m = Map::new();
            m.insert(key, inner);
            canonical_getatt(Value::Object(m))
        }
    }
}

/// `Fn::GetAtt: "A.B.C"` and `Fn::GetAtt: [A, B.C]` are the same.
fn canonical_getatt(v: Value) -> Value {
    if let Value::Object(m) = &v {
        if let (1, Some(Value::String(s))) = (m.len(), m.get("Fn::GetAtt")) {
            if let Some((resource, attribute)) = s.split_once('.') {
                let mut out = Map::new();
                out.insert(
                    "Fn::GetAtt".into(),
                    Value::Array(vec![
                        Value::String(resource.into()),
                        Value::String(attribute.into()),
                    ]),
                );
                return Value::Object(out);
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_long_and_json_forms_are_equal() {
        let short = "Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Properties:\n      ShardCount: 2\n      Name: !Sub \"${AWS::StackName}-x\"\n      Arn: !GetAtt Other.Arn\n      Azs: !Select [0, !GetAZs \"\"]\n      Id: !Ref Vpc\n";
        let long = "Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Properties:\n      ShardCount: \"2\"\n      Name:\n        Fn::Sub: \"${AWS::StackName}-x\"\n      Arn:\n        Fn::GetAtt: [Other, Arn]\n      Azs:\n        Fn::Select: [\"0\", {\"Fn::GetAZs\": \"\"}]\n      Id: {Ref: Vpc}\n";
        let json = r#"{"Resources":{"S":{"Type":"AWS::Kinesis::Stream","Properties":{"ShardCount":2,"Name":{"Fn::Sub":"${AWS::StackName}-x"},"Arn":{"Fn::GetAtt":"Other.Arn"},"Azs":{"Fn::Select":[0,{"Fn::GetAZs":""}]},"Id":{"Ref":"Vpc"}}}}}"#;
        let a = normalize(short).unwrap();
        assert_eq!(a, normalize(long).unwrap());
        assert_eq!(a, normalize(json).unwrap());
        assert_eq!(
            a["Resources"]["S"]["Properties"]["Arn"],
            serde_json::json!({"Fn::GetAtt": ["Other", "Arn"]})
        );
    }

    #[test]
    fn bad_text_is_an_error() {
        assert!(normalize("a: [1").is_err());
    }
}
