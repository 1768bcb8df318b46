//! Typed Pebble layers (the subset the operator renders), serialised to layer YAML.
//!
//! Every service, check and log target carries `override: replace`, so the plan never depends
//! on layers baked into the image. Maps are `BTreeMap`s so the bytes, and the config hash, are
//! stable.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Serialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "kebab-case")]
pub struct Layer {
    pub summary: String,
    pub description: String,
    pub services: BTreeMap<String, Service>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, Check>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub log_targets: BTreeMap<String, LogTarget>,
}

/// Forwards service logs (Loki only: the rock's Pebble is recent enough for it).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct LogTarget {
    #[serde(rename = "override")]
    pub override_: Override,
    #[serde(rename = "type")]
    pub type_: String,
    pub location: String,
    pub services: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum Override {
    Replace,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum Startup {
    Enabled,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Restart,
    Shutdown,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Service {
    #[serde(rename = "override")]
    pub override_: Override,
    pub summary: String,
    pub command: String,
    pub startup: Startup,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    pub on_failure: Action,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub on_check_failure: BTreeMap<String, Action>,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    Alive,
    Ready,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Check {
    #[serde(rename = "override")]
    pub override_: Override,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// Go duration with a unit, e.g. `10s`.
    pub period: String,
    pub timeout: String,
    pub threshold: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct HttpCheck {
    pub url: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct TcpCheck {
    pub port: u16,
}

impl Service {
    /// A service started with the plan, replacing any of its name in other layers; no
    /// environment, working directory, dependencies or check actions until set.
    pub fn new(summary: &str, command: &str, on_failure: Action) -> Self {
        Service {
            override_: Override::Replace,
            summary: summary.into(),
            command: command.into(),
            startup: Startup::Enabled,
            after: vec![],
            environment: BTreeMap::new(),
            working_dir: None,
            on_failure,
            on_check_failure: BTreeMap::new(),
        }
    }
}

impl Check {
    pub fn http(level: Option<Level>, url: impl Into<String>, period: &str, threshold: u32) -> Self {
        Check {
            override_: Override::Replace,
            level,
            period: period.into(),
            timeout: "5s".into(),
            threshold,
            http: Some(HttpCheck { url: url.into() }),
            tcp: None,
        }
    }

    pub fn tcp(level: Option<Level>, port: u16, period: &str, threshold: u32) -> Self {
        Check {
            override_: Override::Replace,
            level,
            period: period.into(),
            timeout: "5s".into(),
            threshold,
            http: None,
            tcp: Some(TcpCheck { port }),
        }
    }
}

impl Layer {
    pub fn to_yaml(&self) -> Result<String, serde_saphyr::SerializeError> {
        serde_saphyr::to_string(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_uses_pebble_field_names_and_quotes_strings() {
        let mut env = BTreeMap::new();
        env.insert("PORT".to_string(), "1025".to_string());
        env.insert("FLAG".to_string(), "false".to_string());
        env.insert("YAML".to_string(), "a: b\n- c".to_string());
        let layer = Layer {
            summary: "s".into(),
            description: "d".into(),
            services: [(
                "svc".to_string(),
                Service {
                    override_: Override::Replace,
                    summary: "x".into(),
                    command: "/bin/true".into(),
                    startup: Startup::Enabled,
                    after: vec![],
                    environment: env,
                    working_dir: Some("/".into()),
                    on_failure: Action::Shutdown,
                    on_check_failure: BTreeMap::new(),
                },
            )]
            .into(),
            checks: [("c".to_string(), Check::tcp(Some(Level::Alive), 80, "10s", 3))].into(),
            log_targets: BTreeMap::new(),
        };
        let yaml = layer.to_yaml().unwrap();
        assert!(yaml.contains("override: replace"), "{yaml}");
        assert!(yaml.contains("working-dir: /"), "{yaml}");
        assert!(yaml.contains("on-failure: shutdown"), "{yaml}");
        // Round-trip: strings stay strings, whatever they look like.
        let back: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back["services"]["svc"]["environment"]["PORT"], "1025");
        assert_eq!(back["services"]["svc"]["environment"]["FLAG"], "false");
        assert_eq!(back["services"]["svc"]["environment"]["YAML"], "a: b\n- c");
        assert_eq!(back["checks"]["c"]["tcp"]["port"], 80);
    }
}
