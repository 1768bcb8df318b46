//! Command line: `run`, `crd`, `render`, `status`, `profile`, `rotate-secret-key`, `prepare-pod`.

pub mod profile;
pub mod render;
pub mod rotate;
pub mod run;
pub mod status;

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

/// Runs a one-shot client command (`status`, `profile`): prints its text, or the error on
/// stderr with a non-zero exit.
fn one_shot<E: Display>(work: impl Future<Output = Result<String, E>>) -> ExitCode {
    // kube and reqwest both use rustls; pick one crypto provider for the whole process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::telemetry::LogFormat;

#[derive(Parser, Debug)]
#[command(name = "penpot-operator", version, about = "Runs Penpot on Kubernetes from Penpot custom resources")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller against the cluster in KUBECONFIG or the in-cluster config.
    #[command(after_help = "Example:\n  penpot-operator run --namespace design --leader-elect --log-format json")]
    Run(RunArgs),
    /// Print the Penpot CustomResourceDefinition as YAML.
    #[command(after_help = "Example:\n  penpot-operator crd | kubectl apply --server-side -f -")]
    Crd,
    /// Print every object the operator would apply for a Penpot, offline.
    #[command(after_help = "Reads YAML streams with one Penpot and its relation Secrets and prints the Secrets,\n\
Services, NetworkPolicy, Ingress and StatefulSet the reconcile would apply, then the Penpot with\n\
the status the controller would write. Exit status 2 on invalid input; a Blocked instance is not\n\
an error.\n\nExample:\n  penpot-operator render -f docs/examples/penpot.yaml\n  penpot-operator render -f penpot.yaml -f secrets.yaml\n  kubectl get penpot,secret,statefulset -o yaml | penpot-operator render -f -")]
    Render(RenderArgs),
    /// Summarise one Penpot for people: phase, relations, pods, recent events. Never prints
    /// relation values. Also works as `kubectl penpot status` with the binary linked as
    /// `kubectl-penpot` on PATH.
    #[command(
        after_help = "Example:\n  penpot-operator status penpot -n design\n  kubectl penpot status penpot -n design"
    )]
    Status(StatusArgs),
    /// Create, edit or delete a Penpot user through the backend's admin interface (its PREPL,
    /// which manage.py uses) in a Ready pod, reached by port-forward. Prints a generated
    /// password once. Also `kubectl penpot profile ...`.
    #[command(
        after_help = "Example:\n  penpot-operator profile create --penpot penpot -n design --email ada@example.com --fullname 'Ada L'\n  penpot-operator profile deactivate --penpot penpot -n design --email ada@example.com\n  penpot-operator profile delete --penpot penpot -n design --email ada@example.com"
    )]
    Profile(ProfileArgs),
    /// Replace a Penpot's secret key: every session ends and links sent before stop working;
    /// the pods roll onto the new key. Also `kubectl penpot rotate-secret-key`.
    #[command(after_help = "Example:\n  penpot-operator rotate-secret-key penpot -n design --yes")]
    RotateSecretKey(RotateArgs),
    /// Prepare a Penpot pod (its init container runs this): copy Pebble into the shared
    /// volume and write nginx's resolver and listen includes from the pod's own network.
    #[command(after_help = "Example:\n  penpot-operator prepare-pod --into /operator --nginx-port 8080")]
    PreparePod(PreparePodArgs),
}

#[derive(clap::Args, Debug)]
pub struct PreparePodArgs {
    /// The volume shared with the workload containers.
    #[arg(long)]
    pub into: PathBuf,
    /// The port nginx listens on.
    #[arg(long, default_value_t = crate::render::paths::NGINX_PORT)]
    pub nginx_port: u16,
    /// The static Pebble to copy.
    #[arg(long, default_value = crate::render::paths::OPERATOR_PEBBLE)]
    pub pebble: PathBuf,
    /// nginx's resolver (spec.dnsResolver); default: the nameservers of /etc/resolv.conf.
    #[arg(long)]
    pub resolver: Option<String>,
    /// PEM bundle of extra CAs (spec.caBundle): write the pod's trust files from it.
    #[arg(long)]
    pub ca_bundle: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    /// The Penpot instance.
    pub name: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Confirm that every user is logged out.
    #[arg(long)]
    pub yes: bool,
}

#[derive(clap::Args, Debug)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub command: ProfileCommand,
    /// The Penpot instance.
    #[arg(long, global = true, default_value = "penpot")]
    pub penpot: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum ProfileCommand {
    /// Create a profile; prints email, full name and the generated password.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        fullname: String,
    },
    /// Set a new, generated password for the profile with this email; prints it once.
    SetPassword {
        #[arg(long)]
        email: String,
    },
    /// Set the full name of the profile with this email.
    Rename {
        #[arg(long)]
        email: String,
        #[arg(long)]
        fullname: String,
    },
    /// Deactivate the profile with this email: it can no longer log in; its files stay.
    Deactivate {
        #[arg(long)]
        email: String,
    },
    /// Reactivate a deactivated profile.
    Activate {
        #[arg(long)]
        email: String,
    },
    /// Delete (soft-delete, as Penpot does) the profile with this email.
    Delete {
        #[arg(long)]
        email: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The Penpot's name.
    pub name: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    pub namespace: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "PENPOT_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Elect a leader through a Lease, so several replicas can run and only one writes.
    #[arg(long, env = "PENPOT_OPERATOR_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the leader Lease (default: the pod's namespace, else --namespace, else "default").
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This replica's identity in the Lease and in Events (default: the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "PENPOT_OPERATOR_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080", env = "PENPOT_OPERATOR_HTTP_ADDR")]
    pub http_addr: SocketAddr,
    /// Penpots reconciled at the same time.
    #[arg(long, default_value_t = 8, env = "PENPOT_OPERATOR_CONCURRENCY")]
    pub concurrency: u16,
    /// Seconds between full resyncs of a settled Penpot (watch events trigger reconciles anyway),
    /// and between deactivations of a deactivated PenpotProfile, sent again since a password
    /// recovery in Penpot reactivates it.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..), env = "PENPOT_OPERATOR_RESYNC_SECONDS")]
    pub resync_seconds: u64,
    /// This operator's own image: the Penpot pods' init container runs it to copy Pebble in.
    #[arg(long, default_value = crate::render::statefulset::DEFAULT_INIT_IMAGE, env = "PENPOT_OPERATOR_IMAGE")]
    pub init_image: String,
    /// Run the PenpotProfile controller, which port-forwards to Penpot pods' PREPL; `false`
    /// where the operator is granted no pods/portforward (the chart's `profiles.enabled: false`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "PENPOT_OPERATOR_PROFILES")]
    pub profiles: bool,
    /// A host OIDC discovery and the relation checks may reach whatever it resolves to
    /// (loopback, link-local, the API server's addresses are refused otherwise). Repeatable;
    /// comma-separated in the variable. `--oidc-allow-host` is its older name.
    #[arg(
        long = "egress-allow-host",
        visible_alias = "oidc-allow-host",
        value_name = "HOST",
        env = "PENPOT_OPERATOR_EGRESS_ALLOW_HOSTS",
        value_delimiter = ','
    )]
    pub egress_allow_hosts: Vec<String>,
    /// Check in the background that each relation's server accepts its credentials, and say
    /// so in `status.checks`; `false` where the operator may not reach the databases.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "PENPOT_OPERATOR_RELATION_CHECKS")]
    pub relation_checks: bool,
    /// Export a trace of every reconcile (a span per step) to this OTLP/HTTP collector, e.g.
    /// `http://otel-collector.monitoring:4318`; `/v1/traces` is appended. None by default.
    #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// YAML file to read; `-` is standard input. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Also render the PodMonitor and PrometheusRule, as when the Prometheus Operator is installed.
    #[arg(long)]
    pub prometheus_operator: bool,
    /// The operator image the pods' init container runs.
    #[arg(long, default_value = crate::render::statefulset::DEFAULT_INIT_IMAGE)]
    pub init_image: String,
}
