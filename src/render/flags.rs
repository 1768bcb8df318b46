//! Penpot flags for the backend and the frontend, computed the way the charm does and then
//! extended by `spec.flags`.
//!
//! Differences from the charm, on purpose: `disable-onboarding-questions` is gone (the flag no
//! longer exists in Penpot 2.17), an `http://` public URI adds `disable-secure-session-cookies`,
//! and air-gapped instances switch off the features that fetch from the internet.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flags {
    pub backend: Vec<String>,
    pub frontend: Vec<String>,
}

pub struct FlagInputs<'a> {
    pub smtp: bool,
    /// The login providers configured (`Relation::LOGINS`), each enabled by its flag.
    pub logins: &'a [crate::crd::Relation],
    /// `spec.passwordLogin`; unset: on only without another provider.
    pub password_login: Option<bool>,
    pub insecure_http: bool,
    pub air_gapped: bool,
    pub telemetry: bool,
    pub extra: &'a [String],
}

impl Flags {
    pub fn compute(i: &FlagInputs) -> Flags {
        // With a login provider, users sign up through it (registration stays on) and, by
        // default, password login goes (the charm's OIDC behaviour); without one, accounts
        // are made by admins (`profile create`) and password login is the way in.
        let providers: Vec<String> = i.logins.iter().map(|r| format!("enable-login-with-{r}")).collect();
        let mut login: Vec<&str> = providers.iter().map(String::as_str).collect();
        // Sign-up only through a provider: with password login kept on, open registration
        // would let anyone make a password account past the IdP and its roles.
        login.push("disable-registration");
        if !i.logins.is_empty() {
            login.push("enable-oidc-registration");
        }
        login.push(if i.password_login.unwrap_or(i.logins.is_empty()) {
            "enable-login-with-password"
        } else {
            "disable-login-with-password"
        });
        let telemetry = if i.telemetry { "enable-telemetry" } else { "disable-telemetry" };
        let mut backend: Vec<&str> = vec!["disable-log-emails", telemetry, "enable-prepl-server"];
        backend.push(if i.smtp { "enable-smtp" } else { "disable-smtp" });
        backend.extend(&login);
        if i.insecure_http {
            backend.push("disable-secure-session-cookies");
        }
        let mut frontend: Vec<&str> = login.clone();
        if i.air_gapped {
            frontend.extend(["disable-dashboard-templates-section", "disable-google-fonts-provider"]);
        }
        Flags { backend: finish(backend, i.extra), frontend: finish(frontend, i.extra) }
    }

    pub fn backend_str(&self) -> String {
        self.backend.join(" ")
    }

    pub fn frontend_str(&self) -> String {
        self.frontend.join(" ")
    }
}

/// Sorted computed flags, then the user's in their order: Penpot applies flags left to right,
/// so the user's win.
fn finish(mut computed: Vec<&str>, extra: &[String]) -> Vec<String> {
    computed.sort_unstable();
    computed.dedup();
    computed.into_iter().map(str::to_string).chain(extra.iter().cloned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::crd::Relation;

    fn inputs(smtp: bool, oidc: bool) -> FlagInputs<'static> {
        let logins: &[Relation] = if oidc { &[Relation::Oidc] } else { &[] };
        FlagInputs {
            smtp,
            logins,
            password_login: None,
            insecure_http: false,
            air_gapped: false,
            telemetry: false,
            extra: &[],
        }
    }

    /// Every provider gets its flag; password login follows `spec.passwordLogin` when set.
    #[test]
    fn login_providers_and_the_password_choice() {
        let logins = [Relation::Github, Relation::Ldap];
        let f = Flags::compute(&FlagInputs { logins: &logins, ..inputs(false, false) });
        assert_eq!(
            f.frontend_str(),
            "disable-login-with-password disable-registration enable-login-with-github enable-login-with-ldap enable-oidc-registration"
        );
        let f = Flags::compute(&FlagInputs { logins: &logins, password_login: Some(true), ..inputs(false, false) });
        assert!(f.frontend.contains(&"enable-login-with-password".to_string()));
        assert!(f.frontend.contains(&"enable-oidc-registration".to_string()), "providers sign users up");
        assert!(f.frontend.contains(&"disable-registration".to_string()), "passwords never sign up");
        let f = Flags::compute(&FlagInputs { password_login: Some(false), ..inputs(false, false) });
        assert_eq!(f.frontend_str(), "disable-login-with-password disable-registration");
    }

    #[test]
    fn charm_flag_sets() {
        let f = Flags::compute(&inputs(false, false));
        assert_eq!(
            f.backend_str(),
            "disable-log-emails disable-registration disable-smtp disable-telemetry enable-login-with-password enable-prepl-server"
        );
        assert_eq!(f.frontend_str(), "disable-registration enable-login-with-password");
        let f = Flags::compute(&inputs(true, true));
        assert_eq!(
            f.backend_str(),
            "disable-log-emails disable-login-with-password disable-registration disable-telemetry enable-login-with-oidc enable-oidc-registration enable-prepl-server enable-smtp"
        );
        assert_eq!(
            f.frontend_str(),
            "disable-login-with-password disable-registration enable-login-with-oidc enable-oidc-registration"
        );
    }

    #[test]
    fn extra_flags_come_last() {
        let extra = vec!["enable-registration".to_string(), "enable-webhooks".to_string()];
        let f = Flags::compute(&FlagInputs {
            extra: &extra,
            air_gapped: true,
            insecure_http: true,
            ..inputs(false, false)
        });
        assert!(f.backend_str().ends_with(
            "disable-telemetry enable-login-with-password enable-prepl-server enable-registration enable-webhooks"
        ));
        assert!(f.backend.contains(&"disable-secure-session-cookies".to_string()));
        assert!(f.frontend.contains(&"disable-google-fonts-provider".to_string()));
    }
}
