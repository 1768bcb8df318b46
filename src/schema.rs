//! Offline check of a document against the CRD's OpenAPI schema, for `render`: types,
//! required fields, enums, ranges, lengths and patterns, with the failing field named.
//! (CEL rules are checked by the API server only.)

use serde_json::Value;

/// Returns the first violation as `path: problem`.
pub fn check(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let fail = |problem: String| Err(format!("{}: {problem}", if path.is_empty() { "(document)" } else { path }));
    if value.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    if schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return if value.is_string() || value.is_i64() || value.is_u64() {
            Ok(())
        } else {
            fail("must be an integer or a string".into())
        };
    }
    if schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true)
        && schema.get("type").is_none()
    {
        return Ok(());
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(obj) = value.as_object() else { return fail("must be an object".into()) };
            for req in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
            {
                if !obj.contains_key(req) {
                    return fail(format!("required field {req:?} is missing"));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties");
            for (k, v) in obj {
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match (props.and_then(|p| p.get(k)), extra) {
                    (Some(s), _) => check(s, v, &child)?,
                    (None, Some(s)) if s.is_object() => check(s, v, &child)?,
                    // The CRD schema leaves apiVersion, kind and metadata to the API server.
                    (None, _) if path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&k.as_str()) => {}
                    (None, _) if props.is_some() => {
                        return fail(format!("unknown field {k:?}"));
                    }
                    _ => {}
                }
            }
        }
        Some("array") => {
            let Some(items) = value.as_array() else { return fail("must be a list".into()) };
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                return fail(format!("must have at most {max} items"));
            }
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    check(s, v, &format!("{path}[{i}]"))?;
                }
            }
        }
        Some("string") => {
            let Some(s) = value.as_str() else { return fail("must be a string".into()) };
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && s.chars().count() as u64 > max
            {
                return fail(format!("must be at most {max} characters"));
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && (s.chars().count() as u64) < min
            {
                return fail(format!("must be at least {min} characters"));
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                match regex::Regex::new(p) {
                    Ok(re) if !re.is_match(s) => return fail(format!("must match {p}")),
                    _ => {}
                }
            }
        }
        Some("integer") => {
            let Some(n) = value.as_i64() else { return fail("must be an integer".into()) };
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && (n as f64) < min
            {
                return fail(format!("must be >= {min}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && (n as f64) > max
            {
                return fail(format!("must be <= {max}"));
            }
        }
        Some("boolean") if !value.is_boolean() => return fail("must be true or false".into()),
        Some("number") if !value.is_number() => return fail("must be a number".into()),
        _ => {}
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        let names: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        return fail(format!("must be one of {}", names.join(", ")));
    }
    Ok(())
}
