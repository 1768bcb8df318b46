//! Text templates kept as files next to their renderers: `{{name}}` placeholders, nothing
//! else (no logic; a renderer picks between whole snippet files instead). nginx and YAML
//! never write `{{`, so a placeholder cannot collide with the text around it.

/// `template` with every `{{name}}` replaced by its value. A placeholder without a value is
/// a bug in the renderer, caught by the renderers' tests: it panics in debug builds.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    debug_assert!(!out.contains("{{"), "unfilled placeholder in:\n{out}");
    out
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn replaces_every_occurrence() {
        assert_eq!(fill("{{a}} and {{a}}, {{b}} { }", &[("a", "x"), ("b", "y")]), "x and x, y { }");
    }

    #[test]
    #[should_panic(expected = "unfilled placeholder")]
    fn a_missing_value_is_a_bug() {
        fill("{{a}} {{b}}", &[("a", "x")]);
    }
}
