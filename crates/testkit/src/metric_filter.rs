//! CloudWatch Logs metric-filter patterns on JSON log events, as the stacks
//! use them (`{ $.event = "window" }`,
//! `{ $.event = "leases" && $.held_here > 0 }`): a conjunction of comparisons of a top-level field with a string
//! or a number. moto does not evaluate metric filters (docs/moto-gaps.md);
//! this evaluates the rendered pattern over the lines a program really
//! logged, with CloudWatch's documented rules for these forms (a string
//! compared with `=`/`!=`, a number with `=`, `!=`, `<`, `<=`, `>`, `>=`;
//! a missing field never matches). Patterns beyond those forms are refused,
//! never guessed.
//!
//! Owns: parsing and matching those patterns. Must not: read templates.

/// Whether `event` (one JSON log line) matches `pattern`; Err for a pattern
/// outside the supported forms.
pub fn matches(pattern: &str, event: &serde_json::Value) -> Result<bool, String> {
    let body = pattern
        .trim()
        .trim_matches('\'')
        .trim()
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .ok_or_else(|| format!("not a JSON filter pattern: {pattern}"))?;
    for term in body.split("&&") {
        if !term_matches(term.trim(), event)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn term_matches(term: &str, event: &serde_json::Value) -> Result<bool, String> {
    let ops = ["!=", ">=", "<=", "=", ">", "<"];
    let (at, op) = ops
        .iter()
        .filter_map(|op| term.find(op).map(|at| (at, *op)))
        .min_by_key(|(at, op)| (*at, std::cmp::Reverse(op.len())))
        .ok_or_else(|| format!("no comparison in `{term}`"))?;
    let field = term[..at]
        .trim()
        .strip_prefix("$.")
        .ok_or_else(|| format!("`{term}`: only top-level $.field selectors are supported"))?;
    if field.contains(['.', '[', '*']) {
        return Err(format!("`{term}`: only top-level fields are supported"));
    }
    let literal = term[at + op.len()..].trim();
    let Some(value) = event.get(field) else {
        return Ok(false);
    };
    if let Some(text) = literal.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        let Some(v) = value.as_str() else {
            return Ok(false);
        };
        return match op {
            "=" => Ok(v == text),
            "!=" => Ok(v != text),
            _ => Err(format!("`{term}`: strings compare with = or != only")),
        };
    }
    let want: f64 = literal
        .parse()
        .map_err(|_| format!("`{term}`: `{literal}` is neither a string nor a number"))?;
    let Some(v) = value.as_f64() else {
        return Ok(false);
    };
    Ok(match op {
        "=" => v == want,
        "!=" => v != want,
        ">" => v > want,
        ">=" => v >= want,
        "<" => v < want,
        "<=" => v <= want,
        _ => unreachable!("listed above"),
    })
}

/// The value a metric transformation (`$.field` or a constant) takes from
/// a matching event; None when the field is missing or not a number.
pub fn metric_value(value: &str, event: &serde_json::Value) -> Option<f64> {
    match value.trim().trim_matches('"').strip_prefix("$.") {
        Some(field) => event.get(field)?.as_f64(),
        None => value.trim().trim_matches('"').parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conjunctions_of_string_and_number_comparisons() {
        let e = json!({"event": "leases", "held_here": 2, "millis_behind": 0});
        assert!(matches(r#"{ $.event = "leases" }"#, &e).unwrap());
        assert!(matches(r#"'{ $.event = "leases" && $.held_here > 0 }'"#, &e).unwrap());
        assert!(!matches(r#"{ $.event = "leases" && $.held_here > 2 }"#, &e).unwrap());
        assert!(matches(r#"{ $.held_here >= 2 && $.event != "window" }"#, &e).unwrap());
        assert!(!matches(r#"{ $.missing = "x" }"#, &e).unwrap());
        assert!(matches("{ $.a.b = 1 }", &e).is_err());
        assert!(matches("[ip, user]", &e).is_err());
        assert_eq!(metric_value("$.millis_behind", &e), Some(0.0));
        assert_eq!(metric_value("\"1\"", &e), Some(1.0));
    }
}
